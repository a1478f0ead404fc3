"""RQ jobs of the sample app: plain functions an `rq worker` started in the release imports.

They need no Django: RQ imports them by dotted path (journal.rqjobs.sleep) from the worker's
working directory, the release. The deploy scenario enqueues ``sleep`` to keep a worker busy
while the deploy restarts it (the job must finish, not land in the failed registry).
"""

import socket
import time


def sleep(seconds: float = 5.0) -> dict:
    """Keeps an RQ worker busy for a while; returns how long and where it ran."""
    started = time.time()
    time.sleep(float(seconds))
    return {"seconds": float(seconds), "hostname": socket.gethostname(), "started": started, "ended": time.time()}
