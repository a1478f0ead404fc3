# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Code shared by celery_inspect, celery_control, rq_inspect and rq_control.

- the common argument spec (documented once in the doc fragment opsbook.webstack.celery);
- secrets: what to redact from a broker URL, and redaction of any text (messages,
  exception strings, tracebacks) before it leaves the module;
- CeleryBroker: a bare Celery app on the broker URL with one reused connection, so no
  project code is needed and a broadcast with a destination list returns as soon as those
  workers answered;
- queue depth: Redis (every priority sub-queue, the separator and the global key prefix
  as the workers have them) and AMQP (passive declare; a missing queue is depth 0);
- parsing of "since" values and of the max_queue_depth threshold.
"""

from __future__ import annotations

import contextlib
import datetime
import re
import time
import traceback
import uuid
from urllib.parse import parse_qsl, quote, unquote, urlsplit

# Modules run on Python 3.9 targets: datetime.UTC is 3.11+.
UTC = datetime.timezone.utc  # noqa: UP017

try:
    from celery import Celery
    from kombu import Consumer

    HAS_CELERY = True
    CELERY_IMPORT_ERROR = None
except ImportError:  # the module reports it with missing_required_lib
    Celery = Consumer = None
    HAS_CELERY = False
    CELERY_IMPORT_ERROR = traceback.format_exc()

# Everything celery_inspect can ask a worker, in the order it is asked.
SECTIONS = ("ping", "active", "reserved", "scheduled", "stats", "registered", "active_queues")
MASK = "********"
# user:password@ in any URL-like text, whatever the scheme (redis, rediss, amqp, sentinel, ...).
_URL_CREDENTIALS = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s'\"]*:)(?P<password>[^@\s'\"]+)(?P<tail>@)")
_QUERY_SECRET_KEYS = ("password", "passwd", "pass", "sasl_password", "ssl_password")


def common_argument_spec() -> dict:
    """Options every Celery module takes; see plugins/doc_fragments/celery.py."""
    return dict(
        broker_url=dict(type="str", required=True, no_log=True),
        timeout=dict(type="float", default=1.0),
        connect_timeout=dict(type="float", default=5.0),
        destination=dict(type="list", elements="str"),
        broker_transport_options=dict(type="dict", default={}),
        accept_content=dict(type="list", elements="str", default=["json"]),
        serializer=dict(type="str"),
    )


def message_serializer(accept_content: list[str] | None, serializer: str | None = None) -> str:
    """The serializer control messages (and sent tasks) are written in: the one given, else the first
    content type the app accepts, by its serializer name (application/x-python-serialize is pickle).

    A worker refuses a message in a content type its accept_content lacks, so a broadcast in json
    to an app that accepts only pickle would go unanswered; the reply comes in the worker's
    task_serializer, which accept_content must list."""
    if serializer:
        return serializer
    first = (list(accept_content or []) or ["json"])[0]
    try:
        from kombu.serialization import registry

        return registry.type_to_name.get(first, first)
    except ImportError:  # reported by the module with missing_required_lib
        return first


# --------------------------------------------------------------------------- secrets


def url_secrets(url: str | None) -> list[str]:
    """Every string that would reveal a broker URL's credentials: the URL, its passwords (raw,
    decoded and encoded) and password-like query parameters. Longest first, for redaction."""
    if not url:
        return []
    found = {url}
    # kombu accepts failover lists "redis://a;redis://b".
    for part in re.split(r"[;,\s]+", url):
        if not part:
            continue
        found.add(part)
        candidates = []
        match = _URL_CREDENTIALS.search(part)
        if match:
            candidates.append(match.group("password"))
        try:
            parsed = urlsplit(part)
            candidates.append(parsed.password)
            query = parsed.query
        except ValueError:
            query = ""
        candidates += [value for key, value in parse_qsl(query) if key.lower() in _QUERY_SECRET_KEYS]
        for candidate in candidates:
            if candidate:
                found.update({candidate, unquote(candidate), quote(unquote(candidate), safe="")})
    return sorted((s for s in found if s), key=len, reverse=True)


def redact(text, secrets) -> str:
    """text with every secret, and the password of any URL in it, replaced by a mask."""
    if text is None:
        return ""
    text = str(text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return _URL_CREDENTIALS.sub(lambda m: m.group("head") + MASK + m.group("tail"), text)


def safe_url(url: str) -> str:
    """The broker URL as it can be shown: scheme, user, host, port and path; no password, no query."""
    shown = []
    for part in [p for p in re.split(r"[;,\s]+", url or "") if p]:
        try:
            parsed = urlsplit(part)
            host = parsed.hostname or ""
            port = f":{parsed.port}" if parsed.port else ""
        except ValueError:
            shown.append(redact(part, url_secrets(part)))
            continue
        user = parsed.username or ""
        if parsed.password is not None:
            userinfo = f"{user}:{MASK}@"
        elif user:
            userinfo = f"{user}@"
        else:
            userinfo = ""
        shown.append(f"{parsed.scheme}://{userinfo}{host}{port}{parsed.path}")
    return ";".join(shown)


def broker_location(url: str) -> str:
    """host:port (scheme) of each broker in the URL, for messages: never equal to a URL, so Ansible's
    masking of the whole no_log value leaves it readable."""
    places = []
    for part in [p for p in re.split(r"[;,\s]+", url or "") if p]:
        try:
            parsed = urlsplit(part)
            port = f":{parsed.port}" if parsed.port else ""
            places.append(f"{parsed.hostname or 'localhost'}{port} ({parsed.scheme})")
        except ValueError:
            places.append("(unparsable URL)")
    return ", ".join(places) or "(no URL)"


def option_secrets(options) -> list[str]:
    """Values of password-like keys anywhere in transport options (sentinel_kwargs: {password: ...})."""
    found = []
    if isinstance(options, dict):
        for key, value in options.items():
            if isinstance(value, str) and any(word in str(key).lower() for word in ("password", "passwd", "secret")):
                found.append(value)
            else:
                found += option_secrets(value)
    elif isinstance(options, (list, tuple)):
        for value in options:
            found += option_secrets(value)
    return [s for s in found if s]


def protect(module, url: str, options=None) -> list[str]:
    """Register a URL's secrets (and password-like transport options) with AnsibleModule's no_log
    masking (belt) and return them for redact() (braces): Ansible masks the whole no_log value,
    not a password that an error message quotes on its own."""
    secrets = url_secrets(url) + option_secrets(options)
    module.no_log_values.update(secrets)
    return secrets


# --------------------------------------------------------------------------- small parsers


_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d|w)\s*$", re.IGNORECASE)
_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(
    value: str | None, now: datetime.datetime | None = None, name: str = "since"
) -> datetime.datetime | None:
    """An ISO 8601 time (naive means UTC) or a duration back from now ("90m", "2h", "1d"); name is the option's."""
    if value in (None, ""):
        return None
    now = now or datetime.datetime.now(UTC)
    match = _RELATIVE.match(str(value))
    if match:
        return now - datetime.timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2).lower()])
    try:
        parsed = datetime.datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(
            f"{name}={value!r} is neither an ISO 8601 time (2025-01-31T12:00:00Z) nor a duration (90m, 2h, 1d)"
        ) from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def parse_depth_limits(value) -> tuple[int | None, dict[str, int]]:
    """max_queue_depth: one integer for every measured queue, or a dict queue -> integer."""
    if value is None:
        return None, {}
    if isinstance(value, bool):
        raise ValueError("max_queue_depth must be an integer or a dictionary of queue name to integer")
    if isinstance(value, dict):
        limits = {}
        for name, limit in value.items():
            try:
                limits[str(name)] = int(limit)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"max_queue_depth[{name!r}] must be an integer, got {limit!r}") from exc
        return None, limits
    try:
        return int(value), {}
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"max_queue_depth must be an integer or a dictionary of queue name to integer, got {value!r}"
        ) from exc


def check_queue_depths(queues: dict, default_limit: int | None, limits: dict[str, int]) -> list[str]:
    """One failure message per queue deeper than its limit."""
    over = []
    for name, info in sorted(queues.items()):
        limit = limits.get(name, default_limit)
        depth = info.get("depth")
        if limit is not None and depth is not None and depth > limit:
            over.append(f"{name} has {depth} (limit {limit})")
    if not over:
        return []
    return ["max_queue_depth: " + "; ".join(over)]


def now_utc() -> datetime.datetime:
    return datetime.datetime.now(UTC)


# --------------------------------------------------------------------------- Celery


class BrokerError(Exception):
    """The broker could not be reached or answered with an error; the message is redacted."""


class CeleryBroker:
    """A bare Celery app on the broker URL and one connection reused by every call.

    A broadcast with a destination list returns as soon as every named worker answered,
    instead of waiting for the whole timeout (see broadcast()).
    """

    @classmethod
    def from_params(cls, params: dict) -> CeleryBroker:
        """The broker as the modules' common options describe it."""
        return cls(
            params["broker_url"],
            transport_options=params["broker_transport_options"],
            accept_content=params["accept_content"],
            serializer=params.get("serializer"),
            timeout=params["timeout"],
            connect_timeout=params["connect_timeout"],
        )

    def __init__(
        self,
        broker_url: str,
        *,
        transport_options: dict | None = None,
        accept_content: list[str] | None = None,
        serializer: str | None = None,
        timeout: float = 1.0,
        connect_timeout: float = 5.0,
    ) -> None:
        self.url = broker_url
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.secrets = url_secrets(broker_url)
        options = dict(transport_options or {})
        scheme = (broker_url.split("://", 1)[0] if "://" in broker_url else "").lower()
        if scheme.startswith(("redis", "rediss", "sentinel")):
            options.setdefault("socket_connect_timeout", connect_timeout)
        self.app = Celery("opsbook_celery", broker=broker_url, set_as_current=False)
        self.app.conf.update(
            broker_transport_options=options,
            broker_connection_timeout=connect_timeout,
            accept_content=list(accept_content or ["json"]),
            result_accept_content=list(accept_content or ["json"]),
            task_serializer=message_serializer(accept_content, serializer),
            result_backend=None,
            task_ignore_result=True,
        )
        self.conn = None
        self.mailbox = None

    # ---- connection

    def connect(self) -> CeleryBroker:
        self.conn = self.app.connection_for_write()
        try:
            self.conn.ensure_connection(max_retries=1, interval_start=0, timeout=self.connect_timeout)
        except Exception as exc:  # kombu raises transport-specific errors: all mean "unreachable"
            self.close()
            raise BrokerError(
                f"cannot connect to the broker at {broker_location(self.url)}: "
                f"{redact(self._describe(exc), self.secrets)}"
            ) from None
        # One bound mailbox, so one reply queue, for every broadcast of this module run.
        self.mailbox = self.app.control.mailbox(self.conn)
        return self

    @staticmethod
    def _describe(exc: BaseException) -> str:
        text = str(exc) or exc.__class__.__name__
        return f"{exc.__class__.__name__}: {text}"

    @property
    def transport(self) -> str:
        """'redis', 'amqp' or kombu's name for another transport."""
        driver = getattr(self.conn.transport, "driver_type", "") or self.conn.transport_cls
        return str(driver).lower()

    def close(self) -> None:
        # Closing a dead connection must not hide the error that killed it.
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.release()
            self.conn = None
        with contextlib.suppress(Exception):
            self.app.close()  # the producer pool that send_task used

    def __enter__(self) -> CeleryBroker:
        return self.connect()

    def __exit__(self, *exc_info) -> None:
        self.close()

    # ---- broadcast

    def broadcast(
        self,
        command: str,
        destination: list[str] | None,
        arguments: dict | None = None,
        *,
        reply: bool = True,
        timeout: float | None = None,
    ) -> dict:
        """{node: reply} for the workers that answered; an empty destination list asks nobody.

        With a destination list the collection stops as soon as every named worker answered.
        kombu's own collection (`limit=len(destination)`) counts every message it reads from the
        reply queue, including a late reply to an earlier request that shares the queue, so one
        slow answer could make the next request miss a worker. Here only replies carrying this
        request's ticket count, until all named workers answered or the timeout passed.
        """
        if destination is not None and not destination:
            return {}
        timeout = self.timeout if timeout is None else timeout
        destination = list(destination) if destination else None
        mailbox = self.mailbox
        if not reply or not hasattr(mailbox, "_publish"):
            # Without a reply, or with a kombu that lacks the mailbox's publish, the public call.
            replies = self.app.control.broadcast(
                command,
                arguments=arguments or {},
                destination=destination,
                connection=self.conn,
                reply=reply,
                timeout=timeout,
                limit=len(destination) if destination else None,
            )
            by_node = {}
            for item in replies or []:
                by_node.update(item)
            return by_node
        ticket = str(uuid.uuid4())
        channel = self.conn.default_channel
        mailbox._publish(
            command, arguments or {}, destination=destination, reply_ticket=ticket, channel=channel, timeout=timeout
        )
        return self._collect(mailbox, channel, ticket, destination, timeout)

    def _collect(self, mailbox, channel, ticket: str, destination: list[str] | None, timeout: float) -> dict:
        replies: dict = {}
        wanted = set(destination or [])

        def on_message(body, message) -> None:
            if message.headers.get("ticket") == ticket and isinstance(body, dict):
                replies.update(body)

        queue = mailbox.reply_queue
        consumer = Consumer(channel, [queue], accept=mailbox.accept, no_ack=True, callbacks=[on_message])
        deadline = time.monotonic() + timeout
        try:
            with consumer:
                while not (wanted and wanted <= set(replies)):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    try:
                        self.conn.drain_events(timeout=remaining)
                    except TimeoutError:
                        break
        finally:
            cleanup = getattr(channel, "after_reply_message_received", None)
            if cleanup is not None:
                cleanup(queue.name)
        return replies

    def ask(self, section: str, destination: list[str] | None) -> dict:
        """One inspect section; workers that did not answer are absent from the result."""
        if section == "ping":
            return {node: (value or {}).get("ok", value) for node, value in self.broadcast("ping", destination).items()}
        return self.broadcast(section, destination)

    def discover(self, destination: list[str] | None) -> tuple[list[str], list[str], dict]:
        """(answered, unknown, ping replies): unknown are the named workers that did not answer."""
        replies = self.ask("ping", destination)
        answered = sorted(replies)
        unknown = sorted(set(destination or []) - set(replies))
        return answered, unknown, replies

    def active_queue_names(self, workers: list[str]) -> dict[str, list[str]]:
        """{worker: [queue names]} for the workers that answered."""
        replies = self.ask("active_queues", workers)
        return {node: sorted(q.get("name") for q in queues or []) for node, queues in replies.items()}

    def busy(self, workers: list[str]) -> tuple[dict[str, list[dict]], list[str]]:
        """({worker: active + reserved tasks}, workers that did not answer both questions)."""
        active = self.ask("active", workers)
        reserved = self.ask("reserved", [w for w in workers if w in active])
        tasks = {}
        for worker in workers:
            if worker in active and worker in reserved:
                running = [dict(task, state="active") for task in active[worker] or []]
                running += [dict(task, state="reserved") for task in reserved[worker] or []]
                tasks[worker] = running
        unknown = sorted(set(workers) - set(tasks))
        return tasks, unknown

    # ---- queues

    def queue_depths(self, names) -> dict[str, dict]:
        names = sorted(set(names))
        if not names:
            return {}
        if self.transport == "redis":
            return self._redis_depths(names)
        return self._declare_depths(names)

    def _redis_depths(self, names: list[str]) -> dict[str, dict]:
        """LLEN of every priority sub-queue of each queue, named as kombu names them.

        kombu keeps priority p (one of priority_steps) of queue q in the list `q` when p is 0
        and `q<sep>p` otherwise (sep defaults to "\\x06\\x16"); the channel's client adds the
        global key prefix. Counting only `q` (what `redis-cli llen celery` does) misses every
        message sent with a priority.
        """
        channel = self.conn.default_channel
        steps = sorted(set(int(p) for p in channel.priority_steps))
        sep = channel.sep
        prefix = getattr(channel, "global_keyprefix", "") or ""

        def key_for(name: str, priority: int) -> str:
            return f"{name}{sep}{priority}" if priority else name

        with channel.client.pipeline() as pipe:
            for name in names:
                for priority in steps:
                    pipe.llen(key_for(name, priority))
            sizes = pipe.execute()
        result = {}
        index = 0
        for name in names:
            by_priority = {}
            keys = []
            for priority in steps:
                size = int(sizes[index] or 0)
                index += 1
                by_priority[str(priority)] = size
                keys.append(prefix + key_for(name, priority))
            result[name] = {
                "depth": sum(by_priority.values()),
                "by_priority": by_priority,
                "keys": keys,
                "exists": any(by_priority.values()),
            }
        return result

    def _declare_depths(self, names: list[str]) -> dict[str, dict]:
        """Passive declare: the broker's count of ready messages and of consumers. A queue
        that does not exist is depth 0 (and exists: false); the broker closes the channel on
        that error, so the next queue gets a new one."""
        result = {}
        channel = self.conn.channel()
        try:
            for name in names:
                try:
                    _queue, count, consumers = channel.queue_declare(queue=name, passive=True)
                    result[name] = {"depth": int(count), "broker_consumers": int(consumers), "exists": True}
                except self.conn.channel_errors as exc:
                    code = getattr(exc, "reply_code", None) or getattr(exc, "code", None)
                    if code in (404, "404") or "NOT_FOUND" in str(exc):
                        result[name] = {"depth": 0, "broker_consumers": 0, "exists": False}
                    else:
                        result[name] = {"depth": None, "exists": None, "error": redact(exc, self.secrets)}
                    with contextlib.suppress(Exception):  # the broker closed it already
                        channel.close()
                    channel = self.conn.channel()
        finally:
            with contextlib.suppress(Exception):  # the connection may be gone; nothing left to release
                channel.close()
        return result

    # ---- sending

    def send_task(self, name: str, args, kwargs, task_id: str, queue: str | None = None) -> None:
        options = {"queue": queue} if queue else {}
        with self.app.producer_or_acquire() as producer:
            self.app.send_task(name, args=args, kwargs=kwargs, task_id=task_id, producer=producer, **options)


def describe_task(task: dict, now: float | None = None) -> str:
    """celery_testapp.sleep[3f2c...] (running 12.3s) for messages."""
    text = f"{task.get('name') or task.get('type') or '?'}[{task.get('id')}]"
    started = task.get("time_start")
    if started:
        text += f" (running {max(0.0, (now or time.time()) - float(started)):.1f}s)"
    elif task.get("state") == "reserved":
        text += " (reserved, not started)"
    return text


def finish(module, result: dict, started: float, failure: str | None, trace: str | None, secrets) -> None:
    """Exit the module: elapsed time, and on failure a message and traceback with secrets redacted."""
    result["elapsed"] = round(time.monotonic() - started, 3)
    if failure is not None:
        extra = {"exception": redact(trace, secrets)} if trace else {}
        module.fail_json(msg=redact(failure, secrets), **extra, **result)
    module.exit_json(**result)
