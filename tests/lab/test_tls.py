"""TLS on lb1 (docs/tls.md): a certificate from the lab's ACME server (pebble on db1, HTTP-01
really validated through lb1), HTTPS served by nginx and by HAProxy with it, a forced renewal
that reloads nginx with no failed request under light load, and a second provision that
changes nothing. The lab goes back to HTTP only at the end (provision_tls=none)."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import jinja2
import pytest
from lab_helpers import BIN, LAB, PORT, ROOT, ansible_playbook, lab_exec

pytestmark = pytest.mark.lab

DOMAIN = "journal.lab.test"
CERT_DIR = "/etc/opsbook/tls/journal"
LISTENER_CA = "/etc/opsbook-lab/pebble-listener.pem"
ROOT_ON_APP1 = "/tmp/opsbook-tls-pebble-root.pem"
ACME_VARS = [
    "-e", "provision_tls=acme",
    "-e", "provision_tls_acme_directory=https://db1:14000/dir",
    "-e", "provision_tls_acme_email=ops@journal.lab.test",
    "-e", f"provision_tls_acme_ca_bundle={LISTENER_CA}",
]  # fmt: skip

# Run in app1 (the controller cannot reach the lab network's addresses): HTTPS to lb1 with SNI and
# host name check for DOMAIN, trusting only pebble's root. Without --seconds: one request, prints
# the status and the served certificate's serial. With it: keep-alive threads at a light rate,
# a new connection after each error, prints the counts.
CLIENT = textwrap.dedent(
    """
    import http.client, json, socket, ssl, sys, threading, time
    host, port, path, seconds = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
    ctx = ssl.create_default_context(cafile=sys.argv[5])

    class Conn(http.client.HTTPSConnection):
        def connect(self):
            sock = socket.create_connection((host, port), timeout=10)
            self.sock = ctx.wrap_socket(sock, server_hostname=sys.argv[6])

    def once(conn):
        conn.request("GET", path, headers={"Host": sys.argv[6]})
        response = conn.getresponse()
        response.read()
        return response.status

    if not seconds:
        conn = Conn(sys.argv[6], port, timeout=10)
        status = once(conn)
        serial = ssl.DER_cert_to_PEM_cert(conn.sock.getpeercert(True))
        print(json.dumps({"status": status, "cert": serial}))
        sys.exit(0)
    counts = {"ok": 0, "failed": 0, "errors": {}}
    lock = threading.Lock()
    end = time.monotonic() + seconds

    def run():
        conn = Conn(sys.argv[6], port, timeout=10)
        while time.monotonic() < end:
            try:
                status = once(conn)
                outcome = "ok" if status < 500 else f"HTTP {status}"
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # Closed while idle by a reloading worker before any response byte: resent once,
                # as browsers and urllib3 do (tests/lab/loadgen.py).
                conn.close()
                conn = Conn(sys.argv[6], port, timeout=10)
                try:
                    status = once(conn)
                    outcome = "ok" if status < 500 else f"HTTP {status}"
                except Exception as exc:
                    outcome = type(exc).__name__
            except Exception as exc:
                outcome = type(exc).__name__
            with lock:
                if outcome == "ok":
                    counts["ok"] += 1
                else:
                    counts["failed"] += 1
                    counts["errors"][outcome] = counts["errors"].get(outcome, 0) + 1
            if outcome != "ok":
                conn.close()
                conn = Conn(sys.argv[6], port, timeout=10)
            time.sleep(0.05)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps(counts))
    """
)


def https(port: int = 443, path: str = "/version/") -> dict:
    result = lab_exec("app1", "python3", "-c", CLIENT, "lb1", str(port), path, "0", ROOT_ON_APP1, DOMAIN)
    return json.loads(result.stdout)


def https_load(seconds: float) -> subprocess.Popen:
    return subprocess.Popen(
        ["docker", "exec", f"{LAB}-app1", "python3", "-c", CLIENT, "lb1", "443", "/version/", str(seconds),
         ROOT_ON_APP1, DOMAIN],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def provision(*extra: str) -> dict[str, int]:
    result, recap = ansible_playbook("provision.yml", "--limit", "lb1", *extra)
    assert result.returncode == 0, result.stdout[-4000:]
    return recap


CERT_DAYS_PLAYBOOK = f"""
- name: Certificate expiry as maintenance.yml and health.yml read it
  hosts: lb1
  gather_facts: false
  tasks:
    - name: The maintenance role's host checks
      ansible.builtin.include_role:
        name: opsbook.webstack.maintenance
        tasks_from: host
      vars:
        maintenance_certificates: [{CERT_DIR}/fullchain.pem]
    - name: Print the certificate findings for the test to read
      ansible.builtin.debug:
        msg: "CERTDAYS {{{{ maintenance_measurements | selectattr('check', 'eq', 'certificate') | list | to_json }}}}"
"""


def certificate_days(tmp_path: Path) -> list[dict]:
    playbook = tmp_path / "certificate_days.yml"
    playbook.write_text(CERT_DAYS_PLAYBOOK)
    result = subprocess.run(
        [BIN / "ansible-playbook", "-i", "inventories/lab", playbook],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, "ANSIBLE_NOCOLOR": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:]
    line = next(x for x in result.stdout.splitlines() if "CERTDAYS" in x)
    return json.loads(json.loads("{" + line.strip().rstrip(",") + "}")["msg"].split(" ", 1)[1])


# pebble keeps nothing across restarts: a lineage or an account certbot holds from an earlier
# run would be unknown to it, so each run starts without them, and leaves none behind.
FORGET = (
    f"rm -rf {CERT_DIR} /etc/letsencrypt/live/journal /etc/letsencrypt/archive/journal"
    " /etc/letsencrypt/renewal/journal.conf /etc/letsencrypt/accounts/db1:14000"
)


@pytest.fixture(scope="module")
def acme(lab):
    """pebble on db1; its root on app1 for the clients. Afterwards the lab is HTTP only again."""
    started = subprocess.run(
        [ROOT / "scripts" / "lab-acme.sh", "start"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert started.returncode == 0, started.stderr
    root = Path.home() / ".cache" / "opsbook" / "labs" / LAB / "pebble-root.pem"
    subprocess.run(["docker", "cp", str(root), f"{LAB}-app1:{ROOT_ON_APP1}"], check=True)
    lab_exec("lb1", "sh", "-c", FORGET)
    try:
        yield started.stdout.strip()
    finally:
        provision("-e", "provision_tls=none")
        lab_exec("lb1", "sh", "-c", FORGET, check=False)
        subprocess.run([ROOT / "scripts" / "lab-acme.sh", "stop"], cwd=ROOT, check=False, timeout=120)


def test_certificate_from_acme_served_by_nginx_renewed_without_failures(acme, tmp_path):
    assert acme == "https://db1:14000/dir"
    assert provision(*ACME_VARS)["lb1"] > 0

    # The certificate came from pebble through the real HTTP-01 challenge and is installed 0600.
    issuer = lab_exec("lb1", "openssl", "x509", "-noout", "-issuer", "-ext", "subjectAltName",
                      "-in", f"{CERT_DIR}/fullchain.pem").stdout  # fmt: skip
    assert "Pebble Intermediate" in issuer and f"DNS:{DOMAIN}" in issuer
    modes = lab_exec("lb1", "stat", "-c", "%a %n", CERT_DIR, f"{CERT_DIR}/privkey.pem", f"{CERT_DIR}/combined.pem")
    assert modes.stdout.split("\n")[:3] == [
        f"700 {CERT_DIR}",
        f"600 {CERT_DIR}/privkey.pem",
        f"600 {CERT_DIR}/combined.pem",
    ], modes.stdout
    renewal = lab_exec("lb1", "cat", "/etc/letsencrypt/renewal/journal.conf").stdout
    assert "renew_hook = /usr/local/sbin/opsbook-tls-deploy-journal" in renewal
    assert "authenticator = webroot" in renewal
    timer = lab_exec("lb1", "systemctl", "is-enabled", "certbot.timer", check=False).stdout.strip()
    assert timer == "enabled"
    dropin = lab_exec("lb1", "systemctl", "show", "-p", "Environment", "certbot.service").stdout
    assert f"REQUESTS_CA_BUNDLE={LISTENER_CA}" in dropin

    # The maintenance and health reports' expiry check reads the installed certificate.
    days = certificate_days(tmp_path)
    assert len(days) == 1 and days[0]["value"] > 30 and "subject journal.lab.test" in days[0]["detail"], days

    # HTTPS with a chain to pebble's root, and HTTP still served (no redirect asked).
    first = https()
    assert first["status"] == 200
    assert subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", f"http://127.0.0.1:{PORT}/version/"],
        capture_output=True, text=True, check=False,
    ).stdout == "200"  # fmt: skip

    # Second run: nothing to change (no new certificate, no reload).
    assert provision(*ACME_VARS)["lb1"] == 0

    # A forced renewal as certbot's timer runs it, under light HTTPS load: the deploy hook
    # installs the new certificate and reloads nginx; no request fails.
    load = https_load(12)
    renew = lab_exec(
        "lb1", "env", f"REQUESTS_CA_BUNDLE={LISTENER_CA}", "certbot", "renew", "--force-renewal",
        "--cert-name", "journal", "--no-random-sleep-on-renew", check=False,
    )  # fmt: skip
    out, err = load.communicate(timeout=120)
    assert renew.returncode == 0, renew.stdout + renew.stderr
    counts = json.loads(out)
    assert counts["ok"] > 50 and counts["failed"] == 0, (counts, err)
    second = https()
    assert second["status"] == 200 and second["cert"] != first["cert"], "the renewed certificate is not served"
    installed = lab_exec("lb1", "cmp", f"{CERT_DIR}/fullchain.pem", "/etc/letsencrypt/live/journal/fullchain.pem")
    assert installed.returncode == 0


def test_haproxy_terminates_tls_with_the_combined_pem(acme):
    """HAProxy on lb1 beside nginx (ports 8091/8453), from the role's template with TLS on."""
    if lab_exec("lb1", "test", "-s", f"{CERT_DIR}/combined.pem", check=False).returncode:
        provision(*ACME_VARS)
    template = (ROOT / "roles" / "provision" / "templates" / "haproxy.cfg.j2").read_text()
    config = (
        jinja2.Template(template, trim_blocks=True, keep_trailing_newline=True)
        .render(
            ansible_managed="test_tls",
            app_name="journal",
            provision_lb_port=8091,
            __provision_lb={"port": 8091, "haproxy_socket": "/run/opsbook-tls-test.sock", "haproxy_backend": "app"},
            provision_tls="acme",
            provision_tls_port=8453,
            provision_tls_redirect=True,
            provision_tls_acme_http_port=8402,
            __provision_tls_dir=CERT_DIR,
            provision_lb_health_path="/version/",
            provision_lb_maintenance_exempt_paths=["/health/"],
            provision_lb_maintenance_retry_after=300,
            provision_lb_backends=[{"name": h, "host": h, "port": 8000, "active": True} for h in ("app1", "app2")],
        )
        .replace("/run/haproxy/admin.sock", "/run/opsbook-tls-test.sock")
        # lb1 runs nginx, so provision wrote no HAProxy maintenance map: the test brings its own.
        .replace("/etc/opsbook/journal-maintenance.map", "/tmp/opsbook-tls-maintenance.map")
    )
    lab_exec("lb1", "sh", "-c", "echo 'maintenance off' > /tmp/opsbook-tls-maintenance.map")
    subprocess.run(["docker", "exec", "-i", f"{LAB}-lb1", "sh", "-c", "cat > /tmp/opsbook-tls-haproxy.cfg"],
                   input=config, text=True, check=True)  # fmt: skip
    checked = lab_exec("lb1", "haproxy", "-c", "-f", "/tmp/opsbook-tls-haproxy.cfg", check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    lab_exec("lb1", "systemd-run", "--quiet", "--unit=opsbook-tls-haproxy", "haproxy", "-Ws", "-f",
             "/tmp/opsbook-tls-haproxy.cfg")  # fmt: skip
    try:
        # systemd-run returns once the unit starts, not once HAProxy listens.
        wait = "for i in $(seq 100); do (: >/dev/tcp/127.0.0.1/8453) 2>/dev/null && exit 0; sleep 0.1; done; exit 1"
        listening = lab_exec("lb1", "bash", "-c", wait, check=False)
        journal = lab_exec("lb1", "journalctl", "-u", "opsbook-tls-haproxy", "-n", "20", check=False)
        assert listening.returncode == 0, journal.stdout
        served = https(8453)
        assert served["status"] == 200
        assert served["cert"] == https()["cert"]  # the same certificate nginx serves
        redirect = lab_exec("app1", "curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}",
                            "-H", f"Host: {DOMAIN}", "http://lb1:8091/version/", check=False).stdout  # fmt: skip
        assert redirect == f"301 https://{DOMAIN}:8453/version/"
    finally:
        lab_exec("lb1", "systemctl", "stop", "opsbook-tls-haproxy.service", check=False)
        lab_exec("lb1", "rm", "-f", "/tmp/opsbook-tls-haproxy.cfg", "/tmp/opsbook-tls-maintenance.map", check=False)
