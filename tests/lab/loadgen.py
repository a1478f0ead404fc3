"""Constant HTTP load with the retry rule of browsers and urllib3, counting every outcome.

Each worker thread keeps one keep-alive connection and sends GET requests one after the
other. A request is retried (once, on a new connection) only when the connection was
closed before any byte of a response arrived: a kept-alive connection that the server or
a reloading nginx worker closed while idle. That is what browsers and urllib3 do, and the
request never reached the application. Everything else counts as failed: a refused or
reset connection after the retry, a timeout, a status >= 500.

    python tests/lab/loadgen.py --url http://127.0.0.1:8081/version/ --seconds 30
    python tests/lab/loadgen.py --url ... --requests 10000
    python tests/lab/loadgen.py --url ... --seconds 60 --rate 200   # at most 200 requests/s in all

Without --rate the threads send as fast as the stack answers, which on a small machine takes
the CPU the deploy under test needs; tests pace the load, benchmarks do not.

prints one JSON line: {"sent": ..., "ok": ..., "failed": ..., "retried": ..., "errors": {...}, "versions": {...}}.
"""

from __future__ import annotations

import argparse
import collections
import http.client
import json
import signal
import threading
import time
import urllib.parse


class LoadGenerator:
    def __init__(
        self,
        url: str,
        threads: int = 4,
        timeout: float = 10.0,
        keepalive: bool = True,
        rate: float = 0,
        host_header: str = "",
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.path = parts.path or "/"
        self.threads, self.timeout, self.keepalive = threads, timeout, keepalive
        # The Host header to send instead of the URL's (an app that checks it: Django's ALLOWED_HOSTS).
        self.host_header = host_header
        # Seconds between two requests of one thread; 0 sends back to back.
        self.interval = threads / rate if rate > 0 else 0.0
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.counts: collections.Counter = collections.Counter()
        self.errors: collections.Counter = collections.Counter()
        self.versions: collections.Counter = collections.Counter()
        self.limit: int | None = None
        # With record_timeline(): (wall-clock time, version) of every answered request.
        self.timeline: list[tuple[float, str]] | None = None
        self._workers: list[threading.Thread] = []

    def _connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)

    def _one(self, conn: http.client.HTTPConnection) -> tuple[str, bytes | None]:
        """Send one request; 'ok', 'retry' (closed before any response byte) or an error name."""
        headers = {} if self.keepalive else {"Connection": "close"}
        if self.host_header:
            headers["Host"] = self.host_header
        try:
            conn.request("GET", self.path, headers=headers)
            response = conn.getresponse()
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            # No status line was read: the request got no answer at all, a client may resend it.
            return "retry", None
        except (OSError, http.client.HTTPException) as exc:
            return type(exc).__name__, None
        try:
            body = response.read()
        except (OSError, http.client.HTTPException) as exc:
            return type(exc).__name__, None
        if response.status >= 500:
            return f"HTTP {response.status}", None
        if not self.keepalive or response.will_close:
            conn.close()
        return "ok", body

    def _record(self, outcome: str, body: bytes | None) -> None:
        with self.lock:
            self.counts["sent"] += 1
            if outcome == "ok":
                self.counts["ok"] += 1
                try:
                    version = json.loads(body or b"{}").get("version", "?")
                except ValueError:
                    version = "?"
                self.versions[version] += 1
                if self.timeline is not None:
                    self.timeline.append((time.time(), version))
            else:
                self.counts["failed"] += 1
                self.errors[outcome] += 1
            if self.limit is not None and self.counts["sent"] >= self.limit:
                self.stop_event.set()

    def _run(self) -> None:
        conn = self._connection()
        due = time.monotonic()
        while not self.stop_event.is_set():
            if self.interval:
                due += self.interval
                if self.stop_event.wait(max(0.0, due - time.monotonic())):
                    break
            outcome, body = self._one(conn)
            if outcome == "retry":
                with self.lock:
                    self.counts["retried"] += 1
                conn.close()
                conn = self._connection()
                outcome, body = self._one(conn)
                if outcome == "retry":
                    outcome = "closed before response (after retry)"
            if outcome != "ok":
                conn.close()
                conn = self._connection()
            self._record(outcome, body)
        conn.close()

    def record_timeline(self) -> LoadGenerator:
        """Keep the time and version of every answer (benchmarks: when did the new release take over)."""
        self.timeline = []
        return self

    def start(self, limit: int | None = None) -> LoadGenerator:
        self.limit = limit
        self.started = time.monotonic()
        for _ in range(self.threads):
            worker = threading.Thread(target=self._run, daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def stop(self) -> dict:
        self.stop_event.set()
        for worker in self._workers:
            worker.join(timeout=self.timeout + 5)
        return self.result()

    def wait(self) -> dict:
        self.stop_event.wait()
        return self.stop()

    def result(self) -> dict:
        with self.lock:
            return {
                "sent": self.counts["sent"],
                "ok": self.counts["ok"],
                "failed": self.counts["failed"],
                "retried": self.counts["retried"],
                "seconds": round(time.monotonic() - self.started, 1),
                "errors": dict(self.errors),
                "versions": dict(self.versions),
            }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=0)
    parser.add_argument("--requests", type=int, default=0)
    parser.add_argument("--rate", type=float, default=0, help="at most this many requests per second in all")
    args = parser.parse_args()
    load = LoadGenerator(args.url, threads=args.threads, rate=args.rate).start(limit=args.requests or None)
    # SIGTERM or Ctrl-C ends the run early: stop and print the counts (callers run it in the background).
    signal.signal(signal.SIGTERM, lambda *_: load.stop_event.set())
    signal.signal(signal.SIGINT, lambda *_: load.stop_event.set())
    load.stop_event.wait(timeout=args.seconds or None)
    print(json.dumps(load.stop()), flush=True)


if __name__ == "__main__":
    main()
