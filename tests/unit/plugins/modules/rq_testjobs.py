"""Jobs for the RQ worker the rq_inspect tests start (`rq worker` imports them from PYTHONPATH)."""

from __future__ import annotations

import time

from rq import get_current_job


def sleep(seconds: float = 1.0) -> float:
    time.sleep(float(seconds))
    return float(seconds)


def fail(message: str = "failed on purpose") -> None:
    raise RuntimeError(message)


def add(x: int, y: int) -> int:
    return x + y


def flaky(key: str) -> int:
    """Fails on its first run and succeeds on the next: a requeue that runs it again shows."""
    runs = get_current_job().connection.incr(key)
    if runs == 1:
        raise RuntimeError(f"first run of {key} fails")
    return runs
