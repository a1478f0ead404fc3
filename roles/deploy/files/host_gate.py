# The deploy's health gate on one host, run there as `python3 -c` by health.yml: argv
# TIMEOUT URL RELEASE UNIT... (URL empty: no web unit on this host). Succeeds when every UNIT
# is active and URL answers HTTP 200 with version RELEASE and every component ok; asks again
# every second until TIMEOUT seconds have passed. Prints one JSON line: ok, units (state per
# unit), status, version, components.
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request

timeout, url, release, units = float(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4:]


def unit_states():
    if not units:
        return {}
    out = subprocess.run(["systemctl", "is-active", *units], capture_output=True, text=True, check=False).stdout
    return dict(zip(units, out.split(), strict=False))


def health():
    if not url:
        return {"status": None, "version": None, "components": {}}
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 - a fixed http URL
            status, body = answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    except OSError as exc:
        return {"status": None, "version": None, "components": {}, "error": str(exc)}
    try:
        data = json.loads(body)
    except ValueError:
        data = {}
    return {"status": status, "version": data.get("version"), "components": data.get("components") or {}}


deadline = time.monotonic() + timeout
while True:
    seen = dict(health(), units=unit_states())
    units_ok = all(state == "active" for state in seen["units"].values()) and len(seen["units"]) == len(units)
    web_ok = not url or (
        seen["status"] == 200
        and seen["version"] == release
        and all(value == "ok" for value in seen["components"].values())
    )
    seen["ok"] = units_ok and web_ok
    if seen["ok"] or time.monotonic() >= deadline:
        print(json.dumps(seen))
        sys.exit(0)
    time.sleep(1)
