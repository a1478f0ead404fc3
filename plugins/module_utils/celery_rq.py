# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""RQ's state read straight from Redis, shared by rq_inspect (reads only) and rq_control (changes).

RQ's own count, len(), get_job_ids() and Worker.all() clean registries up as they read; RQState
reads the same keys with cleanup=False and plain HGETALL/LLEN/ZCARD, and writes only through
RQ's own API (rq_control). run() is the common frame of both modules: connect (one quick retry),
the action, the report of the state after it, thresholds, secrets redacted from every message.
"""

from __future__ import annotations

import base64
import datetime
import time
import traceback
import zlib

from ansible_collections.opsbook.webstack.plugins.module_utils.celery_common import (
    UTC,
    broker_location,
    check_queue_depths,
    finish,
    parse_depth_limits,
    protect,
    safe_url,
)

try:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry
    from rq import suspension
    from rq.queue import Queue
    from rq.registry import (
        CanceledJobRegistry,
        DeferredJobRegistry,
        FailedJobRegistry,
        FinishedJobRegistry,
        ScheduledJobRegistry,
        StartedJobRegistry,
    )
    from rq.worker import Worker

    HAS_RQ = True
    RQ_IMPORT_ERROR = None
except ImportError:
    HAS_RQ = False
    RQ_IMPORT_ERROR = traceback.format_exc()

REGISTRIES = ("started", "failed", "scheduled", "deferred", "finished", "canceled")
LISTED = ("started", "failed", "scheduled", "deferred")


class Failure(Exception):
    """Stop with this message; the result gathered so far goes with it."""


def common_argument_spec() -> dict:
    """Options rq_inspect and rq_control share (documented in each module)."""
    return dict(
        redis_url=dict(type="str", required=True, no_log=True),
        queues=dict(type="list", elements="str"),
        list_limit=dict(type="int", default=20),
        connect_timeout=dict(type="float", default=5.0),
    )


def _text(value) -> str | None:
    if value is None:
        return None
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _time(value) -> datetime.datetime | None:
    """RQ's utcformat ("2025-01-31T12:03:44.120000Z"), as an aware datetime."""
    text = _text(value)
    if not text:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


parse_rq_time = _time


def _iso(value) -> str | None:
    return value.isoformat() if value else None


class RQState:
    """Reads RQ's keys directly (no cleanup), writes only through RQ's own API."""

    def __init__(self, conn) -> None:
        self.conn = conn

    # ---- reading

    def queue_names(self, wanted: list[str] | None) -> list[str]:
        if wanted:
            return sorted(set(wanted))
        prefix = Queue.redis_queue_namespace_prefix
        names = (_text(k) for k in self.conn.smembers(Queue.redis_queues_keys))
        return sorted(n[len(prefix) :] for n in names if n and n.startswith(prefix))

    def job(self, job_id: str) -> dict:
        fields = ("description", "origin", "status", "enqueued_at", "started_at", "ended_at")
        values = self.conn.hmget(f"rq:job:{job_id}", fields)
        info = {"id": job_id}
        # HMGET answers one value per field (zip(strict=) is Python 3.10+, modules run on 3.9).
        for name, value in zip(fields, values):  # noqa: B905
            info[name] = _text(value)
        for name in ("enqueued_at", "started_at", "ended_at"):
            info[name] = _iso(_time(info[name]))
        info["exists"] = any(v is not None for v in values)
        return info

    def last_error(self, job_id: str) -> str | None:
        """The last line of the latest failure: the result stream (RQ 1.12+), else the job's exc_info."""
        text = None
        try:
            entries = self.conn.xrevrange(f"rq:results:{job_id}", count=1)
        except redis.ResponseError:
            entries = []
        if entries:
            payload = {_text(k): v for k, v in entries[0][1].items()}
            raw = payload.get("exc_string")
            if raw:
                try:
                    text = zlib.decompress(base64.b64decode(raw)).decode("utf-8", "replace")
                except (ValueError, zlib.error):
                    text = _text(raw)
        if text is None:
            raw = self.conn.hget(f"rq:job:{job_id}", "exc_info")
            if raw:
                try:
                    text = zlib.decompress(raw).decode("utf-8", "replace")
                except zlib.error:
                    text = _text(raw)
        if not text:
            return None
        lines = [line for line in text.strip().splitlines() if line.strip()]
        return lines[-1].strip() if lines else None

    def workers(self, queues: list[str] | None) -> tuple[dict, list[str]]:
        """({name: info} of live workers on these queues, stale worker names)."""
        prefix = Worker.redis_worker_namespace_prefix
        keys = sorted(_text(k) for k in self.conn.smembers(Worker.redis_workers_keys))
        with self.conn.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hgetall(key)
            hashes = pipe.execute()
        now = datetime.datetime.now(UTC)
        workers, stale = {}, []
        for key, raw in zip(keys, hashes):  # noqa: B905 - the pipeline answers once per command
            name = key[len(prefix) :] if key.startswith(prefix) else key
            if not raw:
                stale.append(name)
                continue
            data = {_text(k): _text(v) for k, v in raw.items()}
            worker_queues = [q for q in (data.get("queues") or "").split(",") if q]
            if queues and not set(worker_queues) & set(queues):
                continue
            heartbeat = _time(data.get("last_heartbeat"))
            job_id = data.get("current_job") or None
            current = None
            if job_id:
                job = self.job(job_id)
                current = {k: job[k] for k in ("id", "description", "origin", "started_at")}
            workers[name] = {
                "state": data.get("state") or "?",
                "queues": worker_queues,
                "last_heartbeat": _iso(heartbeat),
                "heartbeat_age": round((now - heartbeat).total_seconds(), 3) if heartbeat else None,
                "birth": _iso(_time(data.get("birth"))),
                "pid": int(data["pid"]) if data.get("pid") else None,
                "hostname": data.get("hostname"),
                "current_job": current,
                "successful_job_count": int(data.get("successful_job_count") or 0),
                "failed_job_count": int(data.get("failed_job_count") or 0),
                "total_working_time": float(data.get("total_working_time") or 0),
            }
        return workers, stale

    def registry(self, kind: str, queue: str):
        cls = {
            "started": StartedJobRegistry,
            "failed": FailedJobRegistry,
            "scheduled": ScheduledJobRegistry,
            "deferred": DeferredJobRegistry,
            "finished": FinishedJobRegistry,
            "canceled": CanceledJobRegistry,
        }[kind]
        return cls(queue, connection=self.conn)

    def queue(self, name: str, list_limit: int) -> dict:
        info = {"depth": int(self.conn.llen(f"{Queue.redis_queue_namespace_prefix}{name}"))}
        jobs = {}
        for kind in REGISTRIES:
            registry = self.registry(kind, name)
            info[kind] = int(registry.get_job_count(cleanup=False))
            if kind not in LISTED:
                continue
            ids = registry.get_job_ids(0, list_limit - 1, cleanup=False) if list_limit > 0 else []
            if kind == "failed":
                jobs[kind] = []
                for job_id in ids:
                    job = self.job(job_id)
                    jobs[kind].append(
                        {
                            "id": job_id,
                            "description": job["description"],
                            "ended_at": job["ended_at"],
                            "exc": self.last_error(job_id),
                        }
                    )
            elif kind == "scheduled":
                jobs[kind] = []
                for job_id in ids:
                    score = self.conn.zscore(registry.key, job_id)
                    at = datetime.datetime.fromtimestamp(score, UTC) if score else None
                    jobs[kind].append({"id": job_id, "at": _iso(at)})
            else:
                jobs[kind] = list(ids)
        info["jobs"] = jobs
        return info

    def suspended(self) -> bool:
        return bool(self.conn.exists(suspension.WORKERS_SUSPENDED))

    # ---- for rq_control

    def failed_candidates(self, queues: list[str], job_ids, since, limit: int):
        candidates = []
        for name in queues:
            registry = self.registry("failed", name)
            for job_id in registry.get_job_ids(cleanup=False):
                if job_ids and job_id not in job_ids:
                    continue
                job = self.job(job_id)
                ended = _time(job["ended_at"])
                if since is not None and (ended is None or ended < since):
                    continue
                candidates.append((ended or datetime.datetime.min.replace(tzinfo=UTC), name, job))
        candidates.sort(key=lambda item: (item[0], item[2]["id"]))
        return candidates[:limit], len(candidates) > limit


# --------------------------------------------------------------------------- actions


def report(state: RQState, params: dict, result: dict) -> None:
    names = state.queue_names(params["queues"])
    workers, stale = state.workers(params["queues"])
    result.update(
        workers=workers,
        worker_names=sorted(workers),
        stale_workers=stale,
        queues={name: state.queue(name, params["list_limit"]) for name in names},
        suspended=state.suspended(),
    )


def check_thresholds(params: dict, result: dict) -> None:
    checked, failed = [], []
    if params.get("min_workers") is not None:
        checked.append("min_workers")
        names = result["worker_names"]
        if len(names) < params["min_workers"]:
            on = f" on {', '.join(params['queues'])}" if params["queues"] else ""
            message = (
                f"min_workers={params['min_workers']}: {len(names)} live worker(s){on} ({', '.join(names) or 'none'})"
            )
            if result["stale_workers"]:
                message += "; registered but expired: " + ", ".join(result["stale_workers"])
            failed.append(message)
    if params.get("max_queue_depth") is not None:
        checked.append("max_queue_depth")
        default_limit, limits = parse_depth_limits(params["max_queue_depth"])
        failed += check_queue_depths(result["queues"], default_limit, limits)
    result["thresholds"] = {"checked": checked, "failed": failed}
    if failed:
        raise Failure("; ".join(failed))


def run(module, action=None, **initial) -> None:
    """Connect, run action(module, state, result) if given, report the state after it, check thresholds, exit.

    initial: result keys the calling module always returns, with their value before the action."""
    params = module.params
    secrets = protect(module, params["redis_url"])
    name = module._name.rsplit(".", 1)[-1]
    result = {
        "changed": False,
        "workers": {},
        "worker_names": [],
        "stale_workers": [],
        "queues": {},
        "suspended": None,
        "thresholds": {"checked": [], "failed": []},
        **initial,
        "elapsed": 0.0,
        "redis": safe_url(params["redis_url"]),
    }
    if params.get("action"):
        result["action"] = params["action"]
    started = time.monotonic()
    failure = trace = None
    conn = None
    try:
        parse_depth_limits(params.get("max_queue_depth"))
        conn = redis.Redis.from_url(
            params["redis_url"],
            socket_connect_timeout=params["connect_timeout"],
            socket_timeout=max(params["connect_timeout"], 10.0),
            # redis-py retries a failed command three times with backoff by default: one quick retry.
            retry=Retry(NoBackoff(), 1),
        )
        try:
            conn.ping()
        except redis.RedisError as exc:
            raise Failure(
                f"cannot connect to Redis at {broker_location(params['redis_url'])}: {exc.__class__.__name__}: {exc}"
            ) from None
        state = RQState(conn)
        action_failure = None
        if action is not None:
            try:
                action(module, state, result)
            except Failure as exc:
                action_failure = str(exc)
        # The state after the action, also when it failed: what is suspended, running, queued.
        report(state, params, result)
        if action_failure:
            raise Failure(action_failure)
        check_thresholds(params, result)
    except (Failure, ValueError) as exc:
        failure = str(exc)
    except Exception as exc:
        failure = f"{name} {params.get('action') or 'inspect'} failed: {exc.__class__.__name__}: {exc}"
        trace = traceback.format_exc()
    finally:
        if conn is not None:
            conn.close()
    finish(module, result, started, failure, trace, secrets)
