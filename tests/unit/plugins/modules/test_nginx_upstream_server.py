"""opsbook.webstack.nginx_upstream_server (was roles/deploy/files/nginx_mark.py run with `python3 -c`)
and opsbook.webstack.blue_green_confirm, against a real nginx started here (the Debian package's
binary, its own configuration under tmp_path) in front of two real HTTP servers, one per release:
a server marked down stops getting requests after the graceful reload, a configuration nginx
refuses puts the old file back, check mode changes nothing, and the confirmation through nginx
sees only the release still up."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from module_runner import run_module

import helpers

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def backend(version: str) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            data = json.dumps({"status": "ok", "version": version}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def nginx(tmp_path):
    """nginx on a free port in front of two backends (r1 on the first, r2 on the second)."""
    assert os.path.exists(NGINX), "nginx is not installed: scripts/bootstrap.sh installs nginx-light"
    servers = [backend("r1"), backend("r2")]
    ports = [s.server_address[1] for s in servers]
    port = helpers.free_port()
    upstream = tmp_path / "upstream.conf"
    upstream.write_text(
        "upstream app {\n"
        + "".join(f"    server 127.0.0.1:{p} max_fails=0;\n" for p in ports)
        + "    keepalive 4;\n}\n"
    )
    upstream.chmod(0o640)
    extra = tmp_path / "extra"
    extra.mkdir()
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        f"""daemon off;
worker_processes 1;
pid {tmp_path}/nginx.pid;
error_log {tmp_path}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {tmp_path}/body;
    proxy_temp_path {tmp_path}/proxy;
    fastcgi_temp_path {tmp_path}/fastcgi;
    uwsgi_temp_path {tmp_path}/uwsgi;
    scgi_temp_path {tmp_path}/scgi;
    include {upstream};
    include {extra}/*.conf;
    server {{
        listen 127.0.0.1:{port};
        location / {{ proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }}
    }}
}}
"""
    )
    process = helpers.ManagedProcess(
        [NGINX, "-c", str(conf), "-e", str(tmp_path / "error.log")], log_path=tmp_path / "nginx.out"
    )
    process.start()
    url = f"http://127.0.0.1:{port}/health/"
    try:
        helpers.wait_for_http(url, timeout=20, process=process)
        yield {
            "url": url,
            "upstream": upstream,
            "extra": extra,
            "ports": ports,
            "args": {
                "path": str(upstream),
                "host": "127.0.0.1",
                "test_command": [NGINX, "-c", str(conf), "-t", "-q"],
                "reload_command": [NGINX, "-c", str(conf), "-s", "reload"],
            },
        }
    finally:
        process.stop()
        for server in servers:
            server.shutdown()


def versions(url: str, count: int = 8) -> set[str]:
    return {json.loads(helpers.http_request("GET", url).body)["version"] for _ in range(count)}


def served_only(url: str, version: str, timeout: float = 15) -> None:
    helpers.wait_until(lambda: versions(url) == {version}, timeout=timeout, what=f"nginx serving only {version}")


def mark(nginx: dict, port: int, state: str, **kwargs):
    return run_module("nginx_upstream_server", {**nginx["args"], "port": port, "state": state}, **kwargs)


def test_a_server_marked_down_gets_no_request_after_the_reload_and_comes_back_up(nginx):
    first, second = nginx["ports"]
    assert versions(nginx["url"], 8) == {"r1", "r2"}
    before = nginx["upstream"].read_text()
    out = mark(nginx, first, "down")
    assert not out.failed, out.data
    assert out.changed and out["reloaded"] is True
    assert out["server"] == f"server 127.0.0.1:{first} max_fails=0 down;"
    text = nginx["upstream"].read_text()
    assert re.search(rf"^\s*server 127\.0\.0\.1:{first} max_fails=0 down;$", text, re.M)
    assert re.search(rf"^\s*server 127\.0\.0\.1:{second} max_fails=0;$", text, re.M)
    assert oct(nginx["upstream"].stat().st_mode & 0o777) == "0o640"  # mode kept through the atomic replace
    served_only(nginx["url"], "r2")
    again = mark(nginx, first, "down")
    assert not again.failed and again.changed is False and again["reloaded"] is False
    back = mark(nginx, first, "up")
    assert back.changed and back["reloaded"] is True
    assert nginx["upstream"].read_text() == before
    helpers.wait_until(lambda: versions(nginx["url"]) == {"r1", "r2"}, timeout=15, what="both servers back")


def test_check_mode_says_what_would_change_and_touches_nothing(nginx):
    first, _ = nginx["ports"]
    before = nginx["upstream"].read_text()
    out = run_module(
        "nginx_upstream_server",
        {**nginx["args"], "port": first, "state": "down", "_ansible_diff": True},
        check_mode=True,
    )
    assert not out.failed and out.changed and out["reloaded"] is False
    assert out["diff"]["before"] == before and f"{first} max_fails=0 down;" in out["diff"]["after"]
    assert nginx["upstream"].read_text() == before
    assert versions(nginx["url"]) == {"r1", "r2"}


def test_a_configuration_nginx_refuses_puts_the_old_file_back_and_nothing_reloads(nginx):
    first, _ = nginx["ports"]
    before = nginx["upstream"].read_text()
    (nginx["extra"] / "broken.conf").write_text("this_is_not_a_directive;\n")
    out = mark(nginx, first, "down")
    assert out.failed and out["reloaded"] is False
    assert "this_is_not_a_directive" in out.msg and "the old file was put back" in out.msg, out.msg
    assert nginx["upstream"].read_text() == before
    assert not [p for p in nginx["upstream"].parent.iterdir() if p.name.startswith(".opsbook-")]
    assert versions(nginx["url"]) == {"r1", "r2"}  # still serving, from both
    (nginx["extra"] / "broken.conf").unlink()
    assert mark(nginx, first, "down").changed


def test_an_unknown_server_or_file_is_refused_naming_it(nginx, tmp_path):
    before = nginx["upstream"].read_text()
    out = mark(nginx, 1, "down")
    assert out.failed and "no `server 127.0.0.1:1` line" in out.msg and "nothing was changed" in out.msg
    assert nginx["upstream"].read_text() == before
    gone = run_module(
        "nginx_upstream_server", {**nginx["args"], "path": str(tmp_path / "nope.conf"), "port": 1, "state": "up"}
    )
    assert gone.failed and "nope.conf" in gone.msg
    bad = run_module("nginx_upstream_server", {**nginx["args"], "port": 1, "state": "out"})
    assert bad.failed and "state" in bad.msg and "down, up" in bad.msg


def test_blue_green_confirm_through_nginx_sees_only_the_release_still_up(nginx):
    """The switch from r1 to r2 as the blue_green role makes it: r2 down first (only r1 answers,
    the confirmation names it after its timeout), then r2 up and r1 down (only r2 answers)."""
    first, second = nginx["ports"]
    assert mark(nginx, second, "down").changed
    served_only(nginx["url"], "r1")
    wrong = run_module("blue_green_confirm", {"url": nginx["url"], "count": 2, "timeout": 1, "releases": ["r2"]})
    assert not wrong.failed and wrong.changed is False
    assert wrong["wrong"] == ["r1", "r1"] and [a["status"] for a in wrong["answers"]] == [200, 200]
    assert mark(nginx, second, "up").changed and mark(nginx, first, "down").changed
    started = time.monotonic()
    right = run_module("blue_green_confirm", {"url": nginx["url"], "count": 4, "timeout": 10, "releases": ["r2"]})
    assert right["wrong"] == [] and [a["version"] for a in right["answers"]] == ["r2"] * 4
    assert time.monotonic() - started < 10
    checked = run_module(
        "blue_green_confirm", {"url": nginx["url"], "count": 2, "timeout": 5, "releases": ["r2"]}, check_mode=True
    )
    assert checked["wrong"] == [] and checked.changed is False
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        gone = run_module(
            "blue_green_confirm",
            {
                "url": f"http://127.0.0.1:{closed.getsockname()[1]}/health/",
                "count": 2,
                "timeout": 1,
                "releases": ["r2"],
            },
        )
    assert gone["wrong"] == [-1, -1] and all("error" in a for a in gone["answers"])


def test_blue_green_confirm_refuses_what_it_cannot_ask():
    for url in ("https://127.0.0.1/health/", "127.0.0.1:80/health/"):
        out = run_module("blue_green_confirm", {"url": url, "releases": ["r2"]})
        assert out.failed and "plain http://" in out.msg, out.msg
    out = run_module("blue_green_confirm", {"url": "http://127.0.0.1/", "count": 0, "releases": ["r2"]})
    assert out.failed and "count must be at least 1" in out.msg


def test_blue_green_confirm_judges_by_the_apps_own_health_rule():
    """An app of another shape (issue 22 item 4): healthy means {"state": "pass"} and the release is in
    the X-Release header. The confirmation uses the same rule as the gates: an answer with the right
    release but "state": "fail" is not healthy, a healthy answer naming another release is wrong,
    and a malformed rule is refused naming the option."""
    answers = {"state": "pass", "release": "r2"}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            data = json.dumps({"state": answers["state"]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("X-Release", answers["release"])
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        args = {
            "url": f"http://127.0.0.1:{server.server_address[1]}/up",
            "count": 2,
            "timeout": 1,
            "releases": ["r2"],
            "health_expect": {"json_path": "state", "json_value": "pass"},
            "version_source": "header:X-Release",
        }
        right = run_module("blue_green_confirm", args)
        assert right["wrong"] == [] and [a["version"] for a in right["answers"]] == ["r2", "r2"], right
        assert all(a["ok"] for a in right["answers"])
        answers["state"] = "fail"
        sick = run_module("blue_green_confirm", args)
        assert sick["wrong"] == [200, 200], sick
        assert "JSON state is 'fail', expected 'pass'" in sick["answers"][0]["what"]
        answers.update(state="pass", release="r1")
        other = run_module("blue_green_confirm", args)
        assert other["wrong"] == ["r1", "r1"], other
        # Without a version source only health is judged: r1 healthy passes.
        assert run_module("blue_green_confirm", {**args, "version_source": "none"})["wrong"] == []
        bad = run_module("blue_green_confirm", {**args, "health_expect": {"json_path": "state"}})
        assert bad.failed and "health_expect.json_value" in bad.msg, bad.msg
        bad = run_module("blue_green_confirm", {**args, "version_source": "xml:release"})
        assert bad.failed and bad.msg.startswith("version_source: expected json:"), bad.msg
    finally:
        server.shutdown()
        server.server_close()
