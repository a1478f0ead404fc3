# The deploy's health gate through a load balancer, run there as `python3 -c` by
# phase_gate.yml: argv URL RELEASE COUNT TIMEOUT. Succeeds when COUNT answers in a row are
# HTTP 200 with version RELEASE and every component ok; tries again every 2 s until TIMEOUT
# seconds have passed, then fails printing the answers of the last round.
import json
import sys
import time
import urllib.error
import urllib.request

url, release, count, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])


def ask():
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 - a fixed http URL
            status, body = answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    except OSError as exc:
        return False, f"no answer ({exc})"
    try:
        data = json.loads(body)
    except ValueError:
        return False, f"HTTP {status}, not JSON"
    bad = sorted(k for k, v in (data.get("components") or {}).items() if v != "ok")
    version = data.get("version", "unknown")
    ok = status == 200 and version == release and not bad
    return ok, f"HTTP {status} version {version}" + (f" components not ok: {', '.join(bad)}" if bad else "")


deadline = time.monotonic() + timeout
while True:
    seen = []
    for _ in range(count):
        ok, what = ask()
        seen.append(what)
        if not ok:
            break
    if len(seen) == count and ok:
        print(f"{count} answers in a row: {release}, healthy")
        sys.exit(0)
    if time.monotonic() >= deadline:
        print(f"within {timeout:g} s (deploy_health_timeout); last answers: {'; '.join(seen)}")
        sys.exit(1)
    time.sleep(2)
