# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What celery_control does to workers (consumers, drain, shutdown), shared with deploy_activate.

A Controller works on one connected CeleryBroker, with the options of celery_control
(destination, queues, wait_timeout, poll_interval, timeout, fail_on_timeout) in `params`, and
writes what it saw into `result`. `module` gives check_mode and warn().
"""

from __future__ import annotations

import time

from ansible_collections.opsbook.webstack.plugins.module_utils.celery_common import describe_task


class Failure(Exception):
    """Stop with this message; the result gathered so far goes with it."""


# --------------------------------------------------------------------------- workers


class Controller:
    def __init__(self, module, broker, result: dict, params: dict | None = None) -> None:
        self.module = module
        self.params = module.params if params is None else params
        self.broker = broker
        self.result = result
        self.started = time.monotonic()
        self.deadline = self.started + self.params["wait_timeout"]

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def sleep(self) -> None:
        time.sleep(max(0.0, min(self.params["poll_interval"], self.remaining())))

    def waited(self) -> None:
        self.result["waited"] = round(time.monotonic() - self.started, 3)

    def targets(self) -> list[str]:
        """Workers that answered; with a destination list, every one of them must answer."""
        destination = self.params["destination"]
        answered, unknown, _replies = self.broker.discover(destination)
        self.result["unknown_workers"] = unknown
        if unknown:
            raise Failure(
                f"no reply from {', '.join(unknown)} within {self.params['timeout']:g}s: their state is unknown, "
                "so nothing was changed. Check those workers, or leave them out of destination."
            )
        if not answered:
            raise Failure(f"no worker answered within {self.params['timeout']:g}s; nothing was changed")
        for worker in answered:
            self.result["workers"].setdefault(worker, {})
        return answered

    def active_queues(self, workers: list[str]) -> dict[str, list[str]]:
        names = self.broker.active_queue_names(workers)
        silent = sorted(set(workers) - set(names))
        if silent:
            raise Failure(f"no reply to active_queues from {', '.join(silent)}: their queues are unknown")
        return names

    # ---- consumers

    def plan_consumers(self, action: str, workers: list[str], queues: list[str] | None) -> dict[str, list[str]]:
        before = self.active_queues(workers)
        plan = {}
        for worker in workers:
            self.result["workers"][worker]["before"] = before[worker]
            if action == "cancel_consumer":
                wanted = before[worker] if queues is None else [q for q in queues if q in before[worker]]
            else:
                wanted = [q for q in queues if q not in before[worker]]
            if wanted:
                plan[worker] = wanted
        self.result["plan"] = plan
        return plan

    def apply_consumers(self, action: str, plan: dict[str, list[str]]) -> None:
        queues = sorted({q for wanted in plan.values() for q in wanted})
        for queue in queues:
            destination = sorted(w for w, wanted in plan.items() if queue in wanted)
            arguments = {"queue": queue}
            if action == "add_consumer":
                arguments.update(exchange=None, exchange_type="direct", routing_key=None)
            replies = self.broker.broadcast(action, destination, arguments)
            for worker in destination:
                reply = replies.get(worker)
                text = (reply or {}).get("ok") or (reply or {}).get("error") or "no reply"
                self.result["workers"][worker].setdefault("replies", {}).setdefault(action, []).append(text)

    def confirm_consumers(self, action: str, plan: dict[str, list[str]], workers: list[str]) -> None:
        """Poll active_queues until the plan shows in them, or the deadline passes."""
        while True:
            after = self.broker.active_queue_names(workers)
            pending = []
            for worker, wanted in sorted(plan.items()):
                queues = after.get(worker)
                if queues is None:
                    pending.append(f"{worker} did not answer")
                elif action == "cancel_consumer" and set(wanted) & set(queues):
                    pending.append(f"{worker} still consumes {', '.join(sorted(set(wanted) & set(queues)))}")
                elif action == "add_consumer" and set(wanted) - set(queues):
                    pending.append(f"{worker} does not consume {', '.join(sorted(set(wanted) - set(queues)))} yet")
            for worker, queues in after.items():
                self.result["workers"][worker]["after"] = queues
            if not pending:
                self.result["confirmed"] = True
                return
            if self.remaining() <= 0:
                self.result["confirmed"] = False
                raise Failure(
                    f"{action} not confirmed by the workers' active queues after {self.params['wait_timeout']:g}s: "
                    + "; ".join(pending)
                )
            self.sleep()

    def consumers(self, action: str) -> None:
        workers = self.targets()
        plan = self.plan_consumers(action, workers, self.params["queues"])
        self.result["changed"] = bool(plan)
        self.result["confirmed"] = None
        if self.module.check_mode or not plan:
            for worker in workers:
                self.result["workers"][worker]["after"] = self.result["workers"][worker]["before"]
            return
        self.apply_consumers(action, plan)
        self.confirm_consumers(action, plan, workers)
        self.waited()

    # ---- drain

    def still_running(self, workers: list[str]) -> tuple[dict, list[str]]:
        tasks, unknown = self.broker.busy(workers)
        now = time.time()
        running = {}
        for worker, items in tasks.items():
            if items:
                running[worker] = [
                    {
                        "id": t.get("id"),
                        "name": t.get("name") or t.get("type"),
                        "args": t.get("args"),
                        "kwargs": t.get("kwargs"),
                        "state": t.get("state"),
                        "runtime": round(now - float(t["time_start"]), 3) if t.get("time_start") else None,
                        "time_start": t.get("time_start"),
                    }
                    for t in items
                ]
        return running, unknown

    def drain(self) -> None:
        workers = self.targets()
        plan = self.plan_consumers("cancel_consumer", workers, self.params["queues"])
        self.result["changed"] = bool(plan)
        self.result["confirmed"] = None
        if self.module.check_mode:
            running, unknown = self.still_running(workers)
            self.result.update(still_running=running, drained=None)
            return
        if plan:
            self.apply_consumers("cancel_consumer", plan)
            self.confirm_consumers("cancel_consumer", plan, workers)
        while True:
            running, unknown = self.still_running(workers)
            self.result["still_running"] = running
            if not running and not unknown:
                self.result["drained"] = True
                self.waited()
                return
            if self.remaining() <= 0:
                break
            self.sleep()
        self.result["drained"] = False
        self.waited()
        now = time.time()
        parts = []
        for worker, tasks in sorted(running.items()):
            described = ", ".join(describe_task({**t, "time_start": t.get("time_start")}, now) for t in tasks)
            parts.append(f"{worker}: {described}")
        parts += [f"{worker}: no reply (unknown, not idle)" for worker in unknown]
        self.result["unknown_workers"] = sorted(set(self.result["unknown_workers"]) | set(unknown))
        message = f"drain: gave up after {self.params['wait_timeout']:g}s; still running: " + "; ".join(parts)
        if self.params["fail_on_timeout"]:
            raise Failure(message)
        self.module.warn(message)

    # ---- shutdown

    def shutdown(self) -> None:
        destination = self.params["destination"]
        answered, unknown, _replies = self.broker.discover(destination)
        self.result["unknown_workers"] = unknown
        if unknown:
            self.module.warn(
                f"no reply from {', '.join(unknown)}: not sent a shutdown (they may be stopped already; "
                "their state is unknown)"
            )
        stats = self.broker.ask("stats", answered) if answered else {}
        pids = {worker: (stats.get(worker) or {}).get("pid") for worker in answered}
        for worker in answered:
            self.result["workers"].setdefault(worker, {})["pid"] = pids[worker]
        self.result["changed"] = bool(answered)
        self.result.update(stopped=[], restarted=[])
        if self.module.check_mode or not answered:
            return
        self.broker.broadcast("shutdown", answered, reply=False)
        remaining = list(answered)
        while True:
            still, _unknown, _replies = self.broker.discover(remaining)
            now_stats = self.broker.ask("stats", still) if still else {}
            for worker in remaining:
                if worker not in still:
                    self.result["stopped"].append(worker)
                elif (now_stats.get(worker) or {}).get("pid") not in (None, pids[worker]):
                    self.result["restarted"].append(worker)
            remaining = [w for w in still if w not in self.result["restarted"]]
            if not remaining:
                self.waited()
                self.result["stopped"].sort()
                self.result["restarted"].sort()
                return
            if self.remaining() <= 0:
                break
            self.sleep()
        self.waited()
        running, _unknown = self.still_running(remaining)
        details = []
        for worker in remaining:
            tasks = running.get(worker) or []
            busy = f", finishing {len(tasks)} task(s): " + ", ".join(describe_task(t) for t in tasks) if tasks else ""
            details.append(f"{worker} (pid {pids[worker]}){busy}")
        raise Failure(
            f"shutdown: after {self.params['wait_timeout']:g}s still answering: {'; '.join(details)}. "
            "A warm shutdown waits for running tasks; raise wait_timeout or stop the process."
        )
