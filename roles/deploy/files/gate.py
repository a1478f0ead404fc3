# The deploy's health gates, run as `python3 -c` on the host that asks: argv TIMEOUT URL
# RELEASE COUNT UNIT... health.yml runs it on each app host (COUNT 1, the host's units),
# phase_gate.yml on the first load balancer (COUNT: app hosts twice, no units; URL empty:
# no web unit on the host). Passes when every UNIT is active and COUNT answers in a row from
# URL are HTTP 200 with version RELEASE and every component ok; asks again every second
# until TIMEOUT seconds have passed. Prints one JSON line: ok, units (state per unit), the
# last answer's status, version and components, and every answer of the last round (what:
# a line saying what it was).
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request

timeout, url, release, count, units = float(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5:]


def unit_states():
    if not units:
        return {}
    out = subprocess.run(["systemctl", "is-active", *units], capture_output=True, text=True, check=False).stdout.split()
    # One state per unit, in order; none at all when systemctl cannot answer.
    return {unit: out[i] if i < len(out) else "unknown" for i, unit in enumerate(units)}


def ask():
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 - a fixed http URL
            status, body = answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    except OSError as exc:
        return {"status": None, "version": None, "components": {}, "what": f"no answer ({exc})"}
    try:
        data = json.loads(body)
    except ValueError:
        data = {}
    seen = {"status": status, "version": data.get("version"), "components": data.get("components") or {}}
    bad = sorted(k for k, v in seen["components"].items() if v != "ok")
    seen["what"] = f"HTTP {status} version {seen['version']}" + (f" ({', '.join(bad)} not ok)" if bad else "")
    return seen


def healthy(seen):
    return seen["status"] == 200 and seen["version"] == release and all(v == "ok" for v in seen["components"].values())


deadline = time.monotonic() + timeout
while True:
    states = unit_states()
    answers = []
    for _ in range(count if url else 0):
        answers.append(ask())
        if not healthy(answers[-1]):
            break
    last = answers[-1] if answers else {"status": None, "version": None, "components": {}}
    ok = all(s == "active" for s in states.values())
    ok = ok and (not url or (len(answers) == count and all(healthy(a) for a in answers)))
    if ok or time.monotonic() >= deadline:
        print(json.dumps(dict(last, ok=ok, units=states, answers=answers)))
        sys.exit(0)
    time.sleep(1)
