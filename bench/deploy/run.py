"""Benchmark for issue #4: the deploy against a plain shell script doing the same steps.

    OPSBOOK_LAB=... OPSBOOK_LAB_HTTP_PORT=... .venv/bin/python bench/deploy/run.py [--refs v2 v1]

Needs the lab up and deployed (scripts/demo.sh). In one run, on the lab:

- raw: bench/deploy/baseline.sh deploys the first ref over `docker exec` (built once on app1
  with collectstatic and copied to app2, as deploy_build: once; migrate once, switch, plain
  restarts, wait for /health/);
- ours: playbooks/deploy.yml deploys the second ref (preflight, lock, install, migrate,
  collectstatic, rolling switch out of the load balancer, drained workers, health gates,
  records);
- noop: playbooks/deploy.yml again with the same ref (nothing to do);
- raw_same_steps: baseline.sh --same-steps deploys the first ref: the steps deploy.yml takes
  on success (lock, preflight, the environment file, one host at a time out of nginx, the
  in-flight wait, the workers' drain with the Celery CLI, warm restarts, health per host and
  through lb1, records, cleanup), each one plain command;
- ours_back: playbooks/deploy.yml deploys the second ref again, right after (the lab ends as
  it began), paired with raw_same_steps; the pair runs --repeat times (3), alternately, and the
  medians are compared;
- during raw and ours, tests/lab/loadgen.py sends constant load through lb1 and counts failed
  requests (a request is retried only when its connection closed before any response byte).

Writes bench/results/deploy-<UTC date>T<HHMM>.json (the start time) and prints a table. Ratios, not absolute times,
are the result: the machine is shared.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "lab"))
from loadgen import LoadGenerator  # noqa: E402

LAB = os.environ.get("OPSBOOK_LAB") or "opsbook-lab"
PORT = int(os.environ.get("OPSBOOK_LAB_HTTP_PORT", "8080"))
CACHE = Path(os.environ.get("OPSBOOK_CACHE") or Path.home() / ".cache" / "opsbook")
BIN = Path(sys.executable).parent


def timed(argv: list[str], load: bool, rate: float, log: Path | None = None) -> dict:
    url = f"http://127.0.0.1:{PORT}/version/"
    generator = LoadGenerator(url, threads=4, rate=rate).start() if load else None
    started = time.monotonic()
    result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "ANSIBLE_NOCOLOR": "1"})
    seconds = time.monotonic() - started
    counts = generator.stop() if generator else None
    if log:
        log.write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        sys.exit(f"{argv[0]} failed (rc {result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-2000:]}")
    return {"seconds": round(seconds, 1), "load": counts}


def median_run(runs: list[dict]) -> dict:
    """The run with the median time (the lower middle one of an even count)."""
    return sorted(runs, key=lambda r: r["seconds"])[(len(runs) - 1) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--refs", nargs=2, default=["v2", "v1"], metavar=("RAW_REF", "OUR_REF"))
    parser.add_argument(
        "--rate",
        type=float,
        default=200.0,
        help="requests/s of the constant load (0: as fast as 4 threads go, taking the CPU the deploys need)",
    )
    parser.add_argument("--out", help="result file (default bench/results/deploy-<UTC date>T<HHMM>.json)")
    parser.add_argument("--logs", help="directory for each line's output (<line>.log), to profile a run")
    parser.add_argument("--repeat", type=int, default=3, help="runs of the raw_same_steps / ours_back pair")
    args = parser.parse_args()
    started_at = datetime.datetime.now(datetime.UTC)
    rate = args.rate
    raw_ref, our_ref = args.refs
    playbook = [str(BIN / "ansible-playbook"), "-i", "inventories/lab", "playbooks/deploy.yml"]
    playbook += ["-e", f"deploy_ref={our_ref}"]

    logs = Path(args.logs) if args.logs else None
    if logs:
        logs.mkdir(parents=True, exist_ok=True)

    def log(name: str) -> Path | None:
        return logs / f"{name}.log" if logs else None

    raw = timed(
        [str(ROOT / "bench" / "deploy" / "baseline.sh"), LAB, raw_ref, str(CACHE / "journal.git")],
        True,
        rate,
        log("raw"),
    )
    ours = timed(playbook, True, rate, log("ours"))
    noop = timed(playbook, False, rate, log("noop"))
    # The pair raw_same_steps / ours_back, --repeat times, alternately: one pair drifted by
    # several seconds between runs on this shared machine; the medians are compared.
    same_runs, back_runs = [], []
    for i in range(args.repeat):
        suffix = "" if i == 0 else f"-{i + 1}"
        same_steps = [str(ROOT / "bench" / "deploy" / "baseline.sh"), "--same-steps", LAB, raw_ref]
        same_runs.append(timed([*same_steps, str(CACHE / "journal.git")], True, rate, log(f"raw_same_steps{suffix}")))
        back_runs.append(timed(playbook, True, rate, log(f"ours_back{suffix}")))
    raw_same = median_run(same_runs)
    ours_back = median_run(back_runs)
    ours_loads = [r["load"] for r in [ours, *back_runs]]

    result = {
        "benchmark": "deploy",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load": os.getloadavg()},
        "lab": LAB,
        "refs": {"raw": raw_ref, "ours": our_ref},
        "load_rate_per_s": rate or "unpaced",
        "raw": raw,
        "ours": ours,
        "noop": noop,
        "raw_same_steps": raw_same,
        "ours_back": ours_back,
        "raw_same_steps_runs_s": [r["seconds"] for r in same_runs],
        "ours_back_runs_s": [r["seconds"] for r in back_runs],
        # Every request sent through lb1 while one of our deploys ran, and how many failed.
        "ours_requests": {
            "sent": sum(load["sent"] for load in ours_loads),
            "failed": sum(load["failed"] for load in ours_loads),
            "deploys": len(ours_loads),
        },
        "ratio_ours_to_raw": round(ours["seconds"] / raw["seconds"], 2),
        "ratio_noop_to_raw": round(noop["seconds"] / raw["seconds"], 2),
        "ratio_ours_to_raw_same_steps": round(ours_back["seconds"] / raw_same["seconds"], 2),
    }
    # Named by the start time, so a second run the same day keeps the first.
    default_out = ROOT / "bench" / "results" / f"deploy-{started_at:%Y-%m-%dT%H%M}.json"
    out = Path(args.out) if args.out else default_out
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'line':<16}{'seconds':>10}{'requests':>10}{'failed':>8}{'retried':>9}")
    for name in ("raw", "ours", "noop", "raw_same_steps", "ours_back"):
        load = result[name]["load"] or {}
        sent, failed, retried = (load.get(k, "-") for k in ("sent", "failed", "retried"))
        print(f"{name:<16}{result[name]['seconds']:>10}{sent:>10}{failed:>8}{retried:>9}")
    print(f"ours/raw {result['ratio_ours_to_raw']} (goal <= 1.5), noop/raw {result['ratio_noop_to_raw']}")
    print(
        f"ours_back/raw_same_steps {result['ratio_ours_to_raw_same_steps']} (medians of {args.repeat}: "
        f"{result['raw_same_steps_runs_s']} / {result['ours_back_runs_s']})"
    )
    req = result["ours_requests"]
    print(f"during our {req['deploys']} deploys: {req['sent']} requests, {req['failed']} failed")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
