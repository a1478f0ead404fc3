"""opsbook.webstack.caddy_upstream_server and the provision role's Caddy templates, against a real Caddy
started here (Debian's caddy, which scripts/bootstrap.sh installs; the role's Caddyfile and site
template rendered under tmp_path) in front of two real HTTP servers, one per release.

Under a constant load (tests/lab/loadgen.py, browsers' retry rule): a server taken out stops getting
requests after `caddy reload`, comes back, and the other goes out and back, with 0 failed requests;
a second run changes and reloads nothing; a configuration `caddy validate` refuses puts the old file
back; check mode changes nothing. The rendered site answers with the maintenance page (503,
Retry-After) while the flag file exists, lets the exempt path through, serves HTTPS from the
certificate files, and the live slot reading (module_utils/slots.py) reads the file the module edits.
"""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jinja2
import pytest
from ansible_collections.opsbook.webstack.plugins.filter.caddy_upstream import caddy_upstream
from ansible_collections.opsbook.webstack.plugins.module_utils.slots import served_slot
from module_runner import run_module

import helpers

ROOT = Path(__file__).resolve().parents[4]
sys.path.insert(0, str(ROOT / "tests" / "lab"))
from loadgen import LoadGenerator  # noqa: E402

CADDY = shutil.which("caddy") or "/usr/bin/caddy"
TEMPLATES = ROOT / "roles" / "provision" / "templates"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    version = ""
    # The Host header of each request for the health path (Caddy's active checks).
    checks: list = []

    def do_GET(self):  # noqa: N802 - http.server's name
        if self.path == "/version/" and self.headers.get("User-Agent", "").startswith("Go-http-client"):
            self.checks.append(self.headers.get("Host"))
        data = json.dumps({"status": "ok", "version": self.version, "path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def backend(version: str) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("H", (Handler,), {"version": version}))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def render(name: str, **variables) -> str:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), keep_trailing_newline=True)
    return env.get_template(name).render(ansible_managed="Managed by a test", **variables)


@pytest.fixture
def caddy(tmp_path):
    """Caddy from the role's templates on free ports (HTTP and HTTPS) in front of r1 and r2."""
    assert Path(CADDY).exists(), "caddy is not installed: scripts/bootstrap.sh installs it"
    servers = [backend("r1"), backend("r2")]
    ports = [s.server_address[1] for s in servers]
    http_port, tls_port, admin_port = helpers.free_port(), helpers.free_port(), helpers.free_port()
    sites, etc = tmp_path / "sites", tmp_path / "opsbook"
    sites.mkdir()
    etc.mkdir()
    (etc / "journal-maintenance.html").write_text("<h1>Down for maintenance</h1>\n")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=lb.test",
         "-keyout", etc / "privkey.pem", "-out", etc / "fullchain.pem"],
        check=True, capture_output=True,
    )  # fmt: skip
    upstream = sites / "journal-upstream.caddy"
    # both servers in the blue slot (the live slot reading must name it), as app_backends gives them
    servers_spec = [{"name": f"s{p}", "host": "127.0.0.1", "port": p, "slot": "blue", "active": True} for p in ports]
    upstream.write_text(caddy_upstream(servers_spec))
    site = render(
        "caddy-site.caddyfile.j2",
        app_name="journal",
        app_server_name="journal.test www.journal.test",
        __provision_lb={"port": http_port, "caddy_upstream": str(upstream)},
        provision_lb_maintenance_exempt_paths=["/health/"],
        provision_lb_maintenance_retry_after=300,
        provision_lb_health_path="/version/",
        provision_tls="selfsigned",
        provision_tls_port=tls_port,
        provision_tls_redirect=False,
        __provision_tls_dir=str(etc),
    )
    # The site's fixed paths (/etc/opsbook for the page and its flag) moved under tmp_path.
    (sites / "journal.caddyfile").write_text(site.replace("/etc/opsbook", str(etc)))
    main = render("Caddyfile.j2").replace("/etc/caddy/opsbook", str(sites))
    conf = tmp_path / "Caddyfile"
    conf.write_text(main.replace("localhost:2019", f"localhost:{admin_port}"))
    validate = [CADDY, "validate", "--config", str(conf), "--adapter", "caddyfile"]
    checked = subprocess.run(validate, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr[-3000:]
    process = helpers.ManagedProcess(
        [CADDY, "run", "--config", str(conf), "--adapter", "caddyfile"],
        log_path=tmp_path / "caddy.log",
        env={**helpers.minimal_env(), "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path)},
    )
    process.start()
    url = f"http://127.0.0.1:{http_port}/version/"
    try:
        helpers.wait_for_http(url, timeout=20, process=process)
        yield {
            "url": url,
            "tls_url": f"https://127.0.0.1:{tls_port}/version/",
            "upstream": upstream,
            "etc": etc,
            "ports": ports,
            "servers": servers_spec,
            "process": process,
            "args": {
                "path": str(upstream),
                "host": "127.0.0.1",
                "validate_command": validate,
                "reload_command": [CADDY, "reload", "--config", str(conf), "--adapter", "caddyfile"],
            },
        }
    finally:
        process.stop()
        for server in servers:
            server.shutdown()


def versions(url: str, count: int = 8) -> set[str]:
    return {json.loads(helpers.http_request("GET", url).body)["version"] for _ in range(count)}


def mark(caddy: dict, port: int, state: str, check_mode: bool = False, **extra):
    args = {**caddy["args"], "port": port, "state": state, **extra}
    return run_module("caddy_upstream_server", args, check_mode=check_mode)


def test_servers_go_out_and_back_under_load_without_a_failed_request(caddy):
    r1, r2 = caddy["ports"]
    assert versions(caddy["url"]) == {"r1", "r2"}
    load = LoadGenerator(caddy["url"], threads=4, rate=100).start()
    try:
        time.sleep(0.5)
        out = mark(caddy, r1, "down")
        assert not out.failed and out.changed and out["reloaded"], out.data
        assert out["server"] == f"# down: to 127.0.0.1:{r1}"
        # `caddy reload` returns once the new configuration serves: no request reaches r1 after it.
        assert versions(caddy["url"], 12) == {"r2"}
        # The live slot reading sees the file as the module left it: r2's line is the one taking traffic.
        assert served_slot("caddy", caddy["upstream"].read_text(), caddy["servers"]) == ("blue", "")
        again = mark(caddy, r1, "down")
        assert not again.failed and not again.changed and not again["reloaded"], again.data
        time.sleep(0.5)
        assert mark(caddy, r1, "up")["reloaded"]
        assert mark(caddy, r2, "down")["reloaded"]
        assert versions(caddy["url"], 12) == {"r1"}
        time.sleep(0.5)
        assert mark(caddy, r2, "up")["reloaded"]
        time.sleep(0.5)
    finally:
        counts = load.stop()
    assert counts["failed"] == 0 and counts["ok"] > 100, counts
    assert versions(caddy["url"], 12) == {"r1", "r2"}
    assert caddy["upstream"].read_text().count("\nto 127.0.0.1:") == 2


def test_check_mode_and_a_refused_configuration_change_nothing(caddy):
    r1, _r2 = caddy["ports"]
    before = caddy["upstream"].read_text()
    checked = mark(caddy, r1, "down", check_mode=True, _ansible_diff=True)
    assert checked.changed and not checked["reloaded"] and "# down: to" in checked["diff"]["after"], checked.data
    assert caddy["upstream"].read_text() == before
    refused = mark(caddy, r1, "down", validate_command=["sh", "-c", "echo broken >&2; exit 1"])
    assert refused.failed and "the old file was put back" in refused.msg and "broken" in refused.msg, refused.data
    assert caddy["upstream"].read_text() == before
    assert versions(caddy["url"]) == {"r1", "r2"}
    missing = mark(caddy, 1, "up")
    assert missing.failed and "no `to 127.0.0.1:1` line" in missing.msg, missing.data


def test_the_active_health_check_asks_with_the_apps_server_name(caddy):
    """An app that checks the Host header (Django's ALLOWED_HOSTS) must not see the upstream's address."""
    helpers.wait_until(lambda: len(Handler.checks) >= 2, timeout=10, what="Caddy's active health checks")
    assert set(Handler.checks) == {"journal.test"}, Handler.checks


def test_the_site_serves_the_maintenance_page_and_https(caddy):
    flag = caddy["etc"] / "journal-maintenance.on"
    flag.write_text("on\n")
    try:
        page = helpers.http_request("GET", caddy["url"].replace("/version/", "/any/"))
        assert page.status == 503 and "Down for maintenance" in page.text, page
        assert page.headers.get("Retry-After") == "300" and page.headers.get("Cache-Control") == "no-store"
        # the exempt path still reaches the app
        health = helpers.http_request("GET", caddy["url"].replace("/version/", "/health/"))
        assert health.status == 200 and health.json()["path"] == "/health/"
    finally:
        flag.unlink()
    assert helpers.http_request("GET", caddy["url"]).status == 200
    context = ssl.create_default_context(cafile=str(caddy["etc"] / "fullchain.pem"))
    context.check_hostname = False
    with urllib.request.urlopen(caddy["tls_url"], context=context, timeout=10) as response:
        assert response.status == 200 and json.loads(response.read())["version"] in ("r1", "r2")
