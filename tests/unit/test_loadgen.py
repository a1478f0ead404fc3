"""tests/lab/loadgen.py, the load generator the deploy tests and bench/deploy count failures with.

Against a real HTTP server on loopback: what it counts as ok, failed and retried, and that
--rate paces it (a count bound, not a speed measurement).
"""

from __future__ import annotations

import http.server
import json
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lab"))
from loadgen import LoadGenerator  # noqa: E402


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    mode = "ok"  # ok | error | hangup-once | hangup

    def do_GET(self):  # noqa: N802 (http.server's name)
        server = self.server
        with server.lock:
            server.requests += 1
            first = server.requests == 1
        if self.mode == "hangup" or (self.mode == "hangup-once" and first):
            # Closed before any byte of a response: the retry rule's case.
            self.close_connection = True
            return
        status = 500 if self.mode == "error" else 200
        body = json.dumps({"version": "v9"}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    def start(mode: str):
        handler = type("H", (Handler,), {"mode": mode})
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        httpd.lock, httpd.requests = threading.Lock(), 0
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        servers.append(httpd)
        return httpd, f"http://127.0.0.1:{httpd.server_address[1]}/version/"

    servers: list = []
    yield start
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


def test_counts_ok_requests_and_the_versions_served(server):
    _, url = server("ok")
    counts = LoadGenerator(url, threads=2).start(limit=50).wait()
    assert counts["sent"] >= 50 and counts["ok"] == counts["sent"] and counts["failed"] == 0
    assert counts["versions"] == {"v9": counts["ok"]}


def test_the_timeline_holds_every_answer_in_time_order(server):
    _, url = server("ok")
    load = LoadGenerator(url, threads=1).record_timeline()
    before = time.time()
    counts = load.start(limit=20).wait()
    assert len(load.timeline) == counts["ok"] >= 20
    assert [v for _, v in load.timeline] == ["v9"] * counts["ok"]
    times = [t for t, _ in load.timeline]
    assert times == sorted(times) and before <= times[0] <= times[-1] <= time.time()
    assert LoadGenerator(url).timeline is None  # off unless asked


def test_a_5xx_is_a_failed_request(server):
    _, url = server("error")
    counts = LoadGenerator(url, threads=1).start(limit=5).wait()
    assert counts["failed"] == counts["sent"] >= 5
    assert counts["errors"] == {"HTTP 500": counts["failed"]}


def test_a_connection_closed_before_any_response_byte_is_retried_once(server):
    _, url = server("hangup-once")
    counts = LoadGenerator(url, threads=1).start(limit=3).wait()
    assert counts["retried"] == 1 and counts["failed"] == 0 and counts["ok"] == counts["sent"]


def test_a_connection_closed_again_after_the_retry_is_failed(server):
    _, url = server("hangup")
    counts = LoadGenerator(url, threads=1).start(limit=2).wait()
    assert counts["failed"] == counts["sent"] == 2
    assert counts["errors"] == {"closed before response (after retry)": 2}


def test_rate_paces_all_threads_together(server):
    httpd, url = server("ok")
    load = LoadGenerator(url, threads=4, rate=20).start()
    time.sleep(1.0)
    counts = load.stop()
    # 20 per second in all: about 20 in one second, never the thousands an unpaced run sends.
    assert 4 <= counts["sent"] <= 30, counts
    assert httpd.requests == counts["sent"]
