# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The steps of deploy_activate that make a release live on a host, each callable alone:
switch (the pointer renamed over atomically; a release without a virtualenv refused), and
restart (beat one by one, the RQ workers in one systemctl restart, the running Celery workers
drained, then the workers and web in one systemd transaction). deploy_activate composes them
with its health gate; a failed step raises StepFailed naming it.
"""

from __future__ import annotations

import os
import subprocess

from ansible.module_utils.basic import missing_required_lib
from ansible_collections.opsbook.webstack.plugins.module_utils.celery_common import (
    HAS_CELERY,
    BrokerError,
    CeleryBroker,
    redact,
)
from ansible_collections.opsbook.webstack.plugins.module_utils.celery_workers import Controller, Failure


class StepFailed(Exception):
    def __init__(self, step: str, message: str) -> None:
        super().__init__(message)
        self.step = step


# --------------------------------------------------------------------------- switch


def switch(app_root: str, pointer: str, release: str, marker: str = "venv/bin/python") -> bool:
    """Point `pointer` at releases/<release>; False when it already did.

    A release without `marker` (the virtualenv's interpreter; a compose release's compose.yml)
    is missing or unfinished, and refused.
    """
    if not os.path.exists(os.path.join(app_root, "releases", release, marker)):
        what = "no virtualenv" if marker == "venv/bin/python" else f"no {marker}"
        raise StepFailed(
            "switch",
            f"{app_root}/releases/{release} has {what} (missing or unfinished release); {pointer} was not changed",
        )
    target = f"releases/{release}"
    if os.path.islink(pointer) and os.readlink(pointer) == target:
        return False
    temporary = f"{pointer}.new"
    if os.path.lexists(temporary):
        os.unlink(temporary)
    os.symlink(target, temporary)
    os.rename(temporary, pointer)
    return True


# --------------------------------------------------------------------------- restart


def systemctl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["systemctl", *args], capture_output=True, text=True, check=False)


def restart_units(units: list[str]) -> None:
    done = systemctl("restart", *units)
    if done.returncode != 0:
        raise StepFailed(
            "restart", f"systemctl restart {' '.join(units)} failed: {done.stderr.strip() or done.stdout.strip()}"
        )


def active(units: list[str]) -> list[str]:
    return [unit for unit in units if systemctl("is-active", "--quiet", unit).returncode == 0]


def drain(module, workers: list[dict], result: dict, secrets: list[str]) -> None:
    """The workers stop consuming every queue and finish what they run (a warning past the timeout)."""
    if not workers:
        return
    params = module.params
    if not HAS_CELERY:
        raise StepFailed("drain", missing_required_lib("celery"))
    nodes = [worker["node"] for worker in workers]
    seen = {"workers": {}, "unknown_workers": []}
    controller_params = {
        "destination": nodes,
        "queues": None,  # all the queues each consumes
        "wait_timeout": params["drain_timeout"],
        "poll_interval": 0.5,
        "timeout": params["celery_timeout"],
        "fail_on_timeout": False,
    }
    broker = CeleryBroker(
        params["broker_url"], accept_content=params["accept_content"], timeout=params["celery_timeout"]
    )
    try:
        broker.connect()
        Controller(module, broker, seen, controller_params).drain()
    except (Failure, BrokerError) as exc:
        raise StepFailed("drain", f"drain of {', '.join(nodes)}: {redact(str(exc), secrets)}") from None
    finally:
        broker.close()
    result["drained"] = {node: bool(seen.get("drained")) for node in nodes}


def restart(module, result: dict, secrets: list[str]) -> None:
    """The restart step with deploy_activate's parameters (module.params); `module` also serves the drain."""
    params = module.params
    result["restarted"] = []
    result["drained"] = {}
    for unit in params["beat_units"]:
        restart_units([unit])
        result["restarted"].append(unit)
    if params["rq_units"]:
        # RQ has no "stop consuming" call per worker: its warm shutdown is the drain, and
        # systemctl waits for it (every job running now finishes before its worker restarts).
        restart_units(params["rq_units"])
        result["restarted"] += params["rq_units"]
    workers = params["workers"]
    running = set(active([w["unit"] for w in workers]))
    drain(module, [w for w in workers if w["unit"] in running], result, secrets)
    units = [w["unit"] for w in workers] + ([params["web_unit"]] if params["web_unit"] else [])
    if units:
        restart_units(units)
        result["restarted"] += units
