"""Benchmark for issue #5: blue-green switches under constant load, beside a raw nginx reload.

    OPSBOOK_LAB=... .venv/bin/python bench/blue_green/run.py [--switches 5] [--rate 200]

Needs the lab with the blue-green app journal_bg deployed in both slots (scripts/demo.sh
leaves blue active with v1 and green running v2). In one run, through lb1's port 8081 under
constant load (tests/lab/loadgen.py, every answer's time and release recorded):

- ours: playbooks/blue_green_switch.yml, --switches times (blue -> green -> blue ...);
- raw: the same number of bare switches over `docker exec`: the upstream's port rewritten with
  sed, `nginx -t`, `systemctl reload nginx`, then a pause as long as our switch took.

For each switch: requests and failed requests, and the time from nginx's reload (systemd's
"Reloading nginx.service" line in lb1's journal, microseconds) to the last answer from the old
release (0 when none came after the reload). p50 and p95 of that over the switches, ours and
raw. Writes bench/results/blue_green-<UTC date>.json and prints a table.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "lab"))
from loadgen import LoadGenerator  # noqa: E402

LAB = os.environ.get("OPSBOOK_LAB") or "opsbook-lab"
LB = f"{LAB}-lb1"
APP = "journal_bg"
UPSTREAM = f"/etc/nginx/opsbook/{APP}-upstream.conf"
PORTS = {"blue": 8101, "green": 8102}
BIN = Path(sys.executable).parent


def lb(*argv: str) -> str:
    return subprocess.run(["docker", "exec", LB, *argv], capture_output=True, text=True, check=True).stdout


def lb_address() -> str:
    out = subprocess.run(
        ["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", LB],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return out.stdout.split()[0]


def serving() -> dict[str, str]:
    """The release each slot serves (through the app hosts' slot ports, from lb1)."""
    out = {}
    for slot, port in PORTS.items():
        body = lb("curl", "-s", "--max-time", "5", f"http://app1:{port}/version/")
        out[slot] = json.loads(body)["version"]
    return out


def reloads_since(since: float) -> list[float]:
    """Wall-clock times of nginx reloads on lb1 after `since`."""
    stamp = datetime.datetime.fromtimestamp(since, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")
    out = lb("journalctl", "-u", "nginx", "-o", "json", "--since", f"{stamp} UTC", "--no-pager")
    times = []
    for line in out.splitlines():
        entry = json.loads(line)
        if str(entry.get("MESSAGE", "")).startswith("Reloading"):
            times.append(int(entry["__REALTIME_TIMESTAMP"]) / 1e6)
    return [t for t in times if t >= since]


def takeover(timeline: list[tuple[float, str]], reload_at: float, old: str) -> float:
    """Seconds from the reload to the last answer from the old release (0 if none after it)."""
    last_old = max((t for t, v in timeline if v == old and t >= reload_at), default=reload_at)
    return round(last_old - reload_at, 3)


def switch(kind: str, target: str, pause: float) -> float:
    started = time.monotonic()
    if kind == "ours":
        result = subprocess.run(
            [BIN / "ansible-playbook", "-i", "inventories/lab_bg", "playbooks/blue_green_switch.yml",
             "-e", f"blue_green_slot={target}"],
            cwd=ROOT, capture_output=True, text=True, env={**os.environ, "ANSIBLE_NOCOLOR": "1"},
        )  # fmt: skip
        if result.returncode != 0:
            sys.exit(f"blue_green_switch.yml failed:\n{result.stdout[-4000:]}")
    else:
        old_port, new_port = PORTS["green" if target == "blue" else "blue"], PORTS[target]
        lb("sh", "-c", f"sed -i 's/:{old_port} /:{new_port} /' {UPSTREAM} && nginx -t -q && systemctl reload nginx")
        time.sleep(pause)
    return time.monotonic() - started


def run(kind: str, switches: int, rate: float, start_slot: str, pause: float) -> dict:
    releases = serving()
    load = LoadGenerator(f"http://{lb_address()}:8081/version/", threads=4, rate=rate).record_timeline().start()
    time.sleep(2)
    rounds, slot = [], start_slot
    try:
        for _ in range(switches):
            target = "green" if slot == "blue" else "blue"
            before = time.time()
            sent_before = load.result()
            seconds = switch(kind, target, pause)
            time.sleep(2)  # answers in flight at the end
            after = load.result()
            reload_at = reloads_since(before)
            if len(reload_at) != 1:
                sys.exit(f"{kind}: expected one nginx reload for the switch to {target}, saw {len(reload_at)}")
            rounds.append(
                {
                    "to": target,
                    "seconds": round(seconds, 1),
                    "sent": after["sent"] - sent_before["sent"],
                    "failed": after["failed"] - sent_before["failed"],
                    "takeover_seconds": takeover(load.timeline, reload_at[0], releases[slot]),
                }
            )
            slot = target
    finally:
        counts = load.stop()
    takeovers = sorted(r["takeover_seconds"] for r in rounds)
    return {
        "switches": rounds,
        "load": {k: counts[k] for k in ("sent", "ok", "failed", "retried", "errors")},
        "takeover_p50": round(statistics.median(takeovers), 3),
        "takeover_p95": round(takeovers[min(len(takeovers) - 1, round(0.95 * (len(takeovers) - 1)))], 3),
        "end_slot": slot,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--switches", type=int, default=5)
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second through lb1 (all threads)")
    parser.add_argument("--out", type=Path, help="result file (default bench/results/blue_green-<date>.json)")
    args = parser.parse_args()

    start = lb("cat", f"/etc/opsbook/{APP}-active-slot").strip()
    releases = serving()
    if releases["blue"] == releases["green"]:
        sys.exit("both slots serve the same release: deploy another ref to one (scripts/demo.sh does)")
    ours = run("ours", args.switches, args.rate, start, 0)
    pause = statistics.median(r["seconds"] for r in ours["switches"])
    raw = run("raw", args.switches, args.rate, ours["end_slot"], pause)
    # Leave the lab as the state file says: the raw switches do not record a slot.
    if raw["end_slot"] != ours["end_slot"]:
        switch("raw", ours["end_slot"], 0)

    result = {
        "benchmark": "blue_green",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "rate": args.rate,
        "releases": releases,
        "ours": ours,
        "raw": raw,
        "requests": ours["load"]["sent"] + raw["load"]["sent"],
        "failed": ours["load"]["failed"] + raw["load"]["failed"],
    }
    out = args.out or ROOT / "bench" / "results" / f"blue_green-{datetime.date.today().isoformat()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")

    print(f"{'':6} {'switches':>8} {'requests':>9} {'failed':>7} {'takeover p50':>13} {'p95':>7} {'switch s':>9}")
    for name in ("ours", "raw"):
        r = result[name]
        took = statistics.median(s["seconds"] for s in r["switches"])
        print(
            f"{name:6} {len(r['switches']):>8} {r['load']['sent']:>9} {r['load']['failed']:>7}"
            f" {r['takeover_p50']:>12.3f}s {r['takeover_p95']:>6.3f}s {took:>9.1f}"
        )
    print(f"written to {out}")


if __name__ == "__main__":
    main()
