"""Benchmark for issue #24: deploy time against the number of app hosts, over docker and SSH.

    .venv/bin/python bench/scale/run.py [--hosts 2 4 8] [--transports docker ssh] [--options]
        [--base-only] [--only docker:2 ssh:8 ...] [--no-setup] [--keep] [--before RESULT]

Brings up its own lab (OPSBOOK_LAB, default opsbook-scale, lb1 on 127.0.0.1:8091) with as many
app hosts as the largest count (OPSBOOK_LAB_APP_HOSTS), provisions it and deploys v1 once to
every app host (not measured). Then for each host count N, smallest first: lb1 provisioned
again with an inventory of app1..appN (its nginx upstream lists those), and for each line of
the matrix, one after the other in the same run:

- raw: bench/scale/baseline.sh, the steps deploy.yml takes on success as plain commands over
  the same transport (docker exec, or ssh with the lab's ssh_config and a master connection);
- ours: playbooks/deploy.yml with the generated inventory of N app hosts over that transport
  (`-f forks`, `-e deploy_serial=...`).

Every line deploys the other of v1 and v2 than the one live, under constant load through lb1
(tests/lab/loadgen.py), whose failed requests are counted. The matrix: every host count and
transport at forks = N and deploy_serial 1; at the largest count also forks 5 (Ansible's
default; ansible.cfg sets 10) and deploy_serial 2. --options adds, at the largest count over
SSH, the controller-side options of issue #24 item 4: pipelining off, `strategy: free`
(ANSIBLE_STRATEGY, for all plays), and with --mitogen DIR mitogen's mitogen_linear strategy.

Writes bench/results/scale-<UTC date>T<HHMM>.json and docs/scale-hosts.svg (time against hosts)
and prints a table with the linear fit (fixed seconds + seconds per added host). --keep leaves
the lab up; otherwise it is taken down at the end. The machine is shared: ratios against the
raw lines of the same run are what count.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "lab"))
from loadgen import LoadGenerator  # noqa: E402

LAB = os.environ.setdefault("OPSBOOK_LAB", "opsbook-scale")
PORT = int(os.environ.setdefault("OPSBOOK_LAB_HTTP_PORT", "8091"))
CACHE = Path(os.environ.get("OPSBOOK_CACHE") or Path.home() / ".cache" / "opsbook")
BIN = Path(sys.executable).parent
CONNECTION = {
    "docker": ROOT / "inventories" / "lab" / "group_vars" / "lab_containers" / "connection.yml",
    "ssh": ROOT / "inventories" / "lab_ssh" / "group_vars" / "lab_containers" / "connection.yml",
}


def inventory(base: Path, count: int, transport: str) -> Path:
    """An inventory of lb1, app1..app<count>, db1 (the groups of inventories/lab) over `transport`."""
    path = base / f"{transport}-{count}"
    if path.exists():
        return path
    (path / "group_vars" / "all").mkdir(parents=True)
    (path / "group_vars" / "lab_containers").mkdir()
    for name in ("app.yml", "deploy.yml", "vault.yml"):
        (path / "group_vars" / "all" / name).symlink_to(ROOT / "inventories" / "lab" / "group_vars" / "all" / name)
    (path / "group_vars" / "lab_containers" / "connection.yml").symlink_to(CONNECTION[transport])
    apps = [f"app{i}" for i in range(1, count + 1)]
    container = "{{ lookup('ansible.builtin.env', 'OPSBOOK_LAB') }}-"
    hosts = {h: {"ansible_host": container + h} for h in ["lb1", *apps, "db1"]}
    data = {
        "all": {
            "children": {
                "lab_containers": {"hosts": hosts},
                "lb": {"hosts": {"lb1": None}},
                "app": {"hosts": dict.fromkeys(apps)},
                "worker": {"hosts": dict.fromkeys(apps)},
                "scheduler": {"hosts": {"app1": None}},
                "db": {"hosts": {"db1": None}},
                "broker": {"hosts": {"db1": None}},
                "backup_store": {"hosts": {"lb1": None}},
            }
        }
    }
    (path / "hosts.yml").write_text(json.dumps(data, indent=2) + "\n")  # JSON is YAML
    return path


def run(
    argv: list, log: Path, env: dict | None = None, load: bool = False, rate: float = 50.0, check: bool = True
) -> dict:
    """Run argv (under load through lb1 when asked); exit on failure unless check is false."""
    generator = LoadGenerator(f"http://127.0.0.1:{PORT}/version/", threads=4, rate=rate).start() if load else None
    started = time.monotonic()
    result = subprocess.run(
        [str(a) for a in argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "ANSIBLE_NOCOLOR": "1", **(env or {})},
    )
    seconds = time.monotonic() - started
    counts = generator.stop() if generator else None
    log.write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        tail = f"{result.stdout[-3000:]}\n{result.stderr[-2000:]}"
        if check:
            sys.exit(f"{argv[0]} failed (rc {result.returncode}, log {log}):\n{tail}")
        failed = [line for line in result.stdout.splitlines() if line.startswith(("fatal:", "ERROR", "[ERROR]"))]
        return {"seconds": round(seconds, 1), "load": counts, "rc": result.returncode, "error": failed[:3]}
    return {"seconds": round(seconds, 1), "load": counts}


def fit(points: list[tuple[int, float]]) -> dict:
    """Least-squares line seconds = fixed + per_host * hosts."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    slope = sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else 0.0
    return {"fixed_s": round(my - slope * mx, 1), "per_host_s": round(slope, 2)}


def svg_plot(series: dict[str, list[tuple[int, float]]], path: Path, title: str) -> None:
    """A small line chart, seconds against hosts, one line per series (hand-written SVG)."""
    width, height, left, right, top, bottom = 640, 400, 60, 170, 40, 50
    xs = sorted({x for points in series.values() for x, _ in points})
    ymax = max(y for points in series.values() for _, y in points) * 1.1
    colors = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"]

    def px(x: float) -> float:
        return left + (x - xs[0]) / ((xs[-1] - xs[0]) or 1) * (width - left - right)

    def py(y: float) -> float:
        return height - bottom - y / ymax * (height - top - bottom)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="14">{title}</text>',
        f'<line x1="{left}" y1="{py(0)}" x2="{width - right}" y2="{py(0)}" stroke="black"/>',
        f'<line x1="{left}" y1="{py(0)}" x2="{left}" y2="{top}" stroke="black"/>',
        f'<text x="{(left + width - right) / 2}" y="{height - 12}" text-anchor="middle">app hosts</text>',
        f'<text x="15" y="{(top + height - bottom) / 2}" transform="rotate(-90 15 {(top + height - bottom) / 2})" '
        'text-anchor="middle">deploy seconds</text>',
    ]
    for x in xs:
        out.append(f'<text x="{px(x)}" y="{py(0) + 16}" text-anchor="middle">{x}</text>')
    step = 30 if ymax > 120 else 10
    for y in range(0, int(ymax) + 1, step):
        out.append(f'<line x1="{left - 4}" y1="{py(y)}" x2="{width - right}" y2="{py(y)}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 6}" y="{py(y) + 4}" text-anchor="end">{y}</text>')
    for i, (name, points) in enumerate(series.items()):
        color = colors[i % len(colors)]
        dash = ' stroke-dasharray="5,4"' if name.startswith("raw") else ""
        if name.endswith("before"):  # a previous run's line (--before): dotted
            dash = ' stroke-dasharray="1,3"'
        coords = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in sorted(points))
        out.append(f'<polyline points="{coords}" fill="none" stroke="{color}" stroke-width="2"{dash}/>')
        for x, y in points:
            out.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{color}"/>')
        ly = top + 10 + i * 18
        out.append(
            f'<line x1="{width - right + 10}" y1="{ly}" x2="{width - right + 30}" y2="{ly}" '
            f'stroke="{color}" stroke-width="2"{dash}/>'
        )
        out.append(f'<text x="{width - right + 35}" y="{ly + 4}">{name}</text>')
    out.append("</svg>")
    path.write_text("\n".join(out) + "\n")


def summary(
    results: list[dict], meta: dict, out: Path, plot: Path, complete: bool, before: list[dict] | None = None
) -> dict:
    """Write the result file (after every line, so a run stopped early keeps what it measured) and the plot."""
    fits = {}
    series: dict[str, list[tuple[int, float]]] = {}
    for transport in sorted({r["transport"] for r in results}):
        base_lines = [r for r in results if r["transport"] == transport and r["forks"] == r["hosts"]
                      and r["serial"] == 1 and not r["option"]]  # fmt: skip
        ours_pts = [(r["hosts"], r["ours"]["seconds"]) for r in base_lines]
        raw_pts = [(r["hosts"], r["raw"]["seconds"]) for r in base_lines]
        if len(ours_pts) >= 2:
            fits[f"ours-{transport}"] = fit(ours_pts)
            fits[f"raw-{transport}"] = fit(raw_pts)
            # What opsbook adds over the same steps as plain commands, run next to it: less
            # sensitive to the load of the shared machine, which moves both lines together.
            fits[f"ours-minus-raw-{transport}"] = fit([(r["hosts"], r["ours"]["seconds"] - r["raw"]["seconds"])
                                                      for r in base_lines])  # fmt: skip
        series[f"ours {transport}"] = ours_pts
        series[f"raw {transport}"] = raw_pts
    for transport in sorted({r["transport"] for r in results}):
        old = [(r["hosts"], r["ours"]["seconds"]) for r in before or [] if r["transport"] == transport
               and r["forks"] == r["hosts"] and r["serial"] == 1 and not r["option"]]  # fmt: skip
        if len(old) >= 2:
            series[f"ours {transport} before"] = old
    loads = [r["ours"]["load"] for r in results]
    result = {
        "benchmark": "scale",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        **meta,
        "complete": complete,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load": os.getloadavg()},
        "lines": results,
        "fit_forks_eq_hosts_serial_1": fits,
        "ours_requests": {
            "sent": sum(x["sent"] for x in loads),
            "failed": sum(x["failed"] for x in loads),
            "deploys": len(loads),
        },
        "raw_requests_failed": sum(r["raw"]["load"]["failed"] for r in results),
    }
    out.write_text(json.dumps(result, indent=2) + "\n")
    if series and all(len(points) >= 2 for points in series.values()):
        svg_plot(series, plot, "opsbook deploy vs raw commands, forks = hosts, deploy_serial 1")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--transports", nargs="+", default=["docker", "ssh"], choices=["docker", "ssh"])
    parser.add_argument("--options", action="store_true", help="also pipelining off and strategy free")
    parser.add_argument(
        "--mitogen",
        help="with --options, also mitogen_linear from this directory (pip install --target DIR mitogen)",
    )
    parser.add_argument("--rate", type=float, default=50.0, help="requests/s of the load through lb1")
    parser.add_argument("--no-setup", action="store_true", help="the lab is up, provisioned and deployed")
    parser.add_argument("--keep", action="store_true", help="leave the lab up")
    parser.add_argument("--out", help="result file (default bench/results/scale-<UTC date>T<HHMM>.json)")
    parser.add_argument("--plot", default=str(ROOT / "docs" / "scale-hosts.svg"))
    parser.add_argument(
        "--build",
        choices=["once", "per_host"],
        default="once",
        help="deploy_build of our deploys, and RAW_BUILD of the raw baseline (the same steps)",
    )
    parser.add_argument("--base-only", action="store_true", help="only forks = hosts, deploy_serial 1")
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="TRANSPORT:HOSTS",
        help="of the forks = hosts, serial 1 lines, only these (e.g. docker:2 docker:8 ssh:2)",
    )
    parser.add_argument("--before", help="a previous result file whose base lines the plot shows dotted")
    args = parser.parse_args()
    started_at = datetime.datetime.now(datetime.UTC)
    hosts = sorted(args.hosts)
    top = hosts[-1]
    logs = CACHE / "bench-scale" / f"{started_at:%Y%m%dT%H%M}"
    logs.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="opsbook-scale-inv-"))
    out = Path(args.out) if args.out else ROOT / "bench" / "results" / f"scale-{started_at:%Y-%m-%dT%H%M}.json"
    meta = {"started": started_at.isoformat(timespec="seconds"), "lab": LAB, "load_rate_per_s": args.rate,
            "logs": str(logs), "build": args.build}  # fmt: skip
    before = json.loads(Path(args.before).read_text())["lines"] if args.before else None
    playbook = [BIN / "ansible-playbook"]
    env_lab = {"OPSBOOK_LAB_APP_HOSTS": str(top)}

    live = {"ref": "v1"}
    if not args.no_setup:
        t0 = time.monotonic()
        run([ROOT / "scripts" / "lab.sh", "up"], logs / "lab-up.log", env_lab)
        run([ROOT / "scripts" / "lab-artifacts.sh"], logs / "artifacts.log")
        run([*playbook, "-i", inventory(base, top, "docker"), "playbooks/provision.yml"], logs / "provision.log")
        # The first deploy takes every app host to the ref app1 does not serve: were app1 on it
        # already, it would keep its older release of that ref while the new hosts got a new
        # one, and the gate through lb1 (which waits for one release id) would fail.
        current = subprocess.run(
            ["docker", "exec", f"{LAB}-app1", "readlink", "/srv/journal/current"], capture_output=True, text=True
        ).stdout.strip()
        live["ref"] = "v1" if current.endswith("-v2") else "v2"
        run([*playbook, "-i", inventory(base, top, "docker"), "playbooks/deploy.yml", "-e", f"deploy_ref={live['ref']}",
             "-f", top], logs / "deploy-first.log")  # fmt: skip
        print(f"setup: {time.monotonic() - t0:.0f} s", flush=True)

    def next_ref() -> str:
        live["ref"] = "v2" if live["ref"] == "v1" else "v1"
        return live["ref"]

    lines = []
    results: list[dict] = []
    for n in hosts:
        run([*playbook, "-i", inventory(base, n, "docker"), "playbooks/provision.yml", "-l", "lb1"],
            logs / f"provision-lb1-{n}.log")  # fmt: skip
        for transport in args.transports:
            if not args.only or f"{transport}:{n}" in args.only:
                lines.append((n, transport, n, 1, "", {}, []))
        if n == top and not args.base_only:
            for transport in args.transports:
                lines.append((n, transport, 5, 1, "", {}, []))
                lines.append((n, transport, n, 2, "", {}, []))
            if args.options and "ssh" in args.transports:
                lines.append((n, "ssh", n, 1, "pipelining off", {},
                              ["-e", "ansible_pipelining=false", "-e", "ansible_ssh_pipelining=false"]))  # fmt: skip
                lines.append((n, "ssh", n, 1, "strategy free", {"ANSIBLE_STRATEGY": "free"}, []))
                if args.mitogen:
                    plugins = Path(args.mitogen).resolve() / "ansible_mitogen" / "plugins" / "strategy"
                    lines.append((n, "ssh", n, 1, "mitogen", {"ANSIBLE_STRATEGY_PLUGINS": str(plugins),
                                                              "ANSIBLE_STRATEGY": "mitogen_linear"}, []))  # fmt: skip
        raw_done: dict[tuple, dict] = {}
        for count, transport, forks, serial, option, env, extra in [line for line in lines if line[0] == n]:
            name = f"{transport}-{count}h-f{forks}-s{serial}" + (f"-{option.replace(' ', '-')}" if option else "")
            key = (transport, serial)
            if key not in raw_done:
                apps = [f"app{i}" for i in range(1, count + 1)]
                ref = next_ref()
                raw_done[key] = run(
                    [
                        ROOT / "bench" / "scale" / "baseline.sh",
                        transport,
                        LAB,
                        ref,
                        CACHE / "journal.git",
                        serial,
                        *apps,
                    ],
                    logs / f"raw-{transport}-{count}h-s{serial}.log",
                    {"RAW_BUILD": args.build},
                    load=True,
                    rate=args.rate,
                )
                raw = raw_done[key]
                print(f"raw  {transport:<6} {count}h s{serial}: {raw['seconds']} s {raw['load']}", flush=True)
            ref = next_ref()
            loadavg = os.getloadavg()
            ours = run(
                [*playbook, "-i", inventory(base, count, transport), "playbooks/deploy.yml", "-e", f"deploy_ref={ref}",
                 "-e", f"deploy_serial={serial}", "-e", f"deploy_build={args.build}", "-f", forks, *extra],
                logs / f"ours-{name}.log", env, load=True, rate=args.rate, check=not option,
            )  # fmt: skip
            if "rc" in ours:  # an option line that failed: the deploy rolled back, the live ref is the old one
                next_ref()
            raw = raw_done[key]
            print(f"ours {name}: {ours['seconds']} s {ours['load']} (raw {raw['seconds']} s)", flush=True)
            results.append({
                "hosts": count, "transport": transport, "forks": forks, "serial": serial, "option": option or None,
                "ours": ours, "raw": raw, "ratio_ours_to_raw": round(ours["seconds"] / raw["seconds"], 2),
                "loadavg_at_start": [round(x, 2) for x in loadavg],
            })  # fmt: skip
            summary(results, meta, out, Path(args.plot), complete=False, before=before)

    print(f"{'line':<34}{'ours s':>8}{'raw s':>8}{'ratio':>7}{'sent':>7}{'failed':>7}")
    for r in results:
        name = f"{r['transport']} {r['hosts']}h f{r['forks']} s{r['serial']} {r['option'] or ''}"
        print(f"{name:<34}{r['ours']['seconds']:>8}{r['raw']['seconds']:>8}{r['ratio_ours_to_raw']:>7}"
              f"{r['ours']['load']['sent']:>7}{r['ours']['load']['failed']:>7}")  # fmt: skip
    fits = summary(results, meta, out, Path(args.plot), complete=True, before=before)["fit_forks_eq_hosts_serial_1"]
    for key, value in fits.items():
        print(f"fit {key}: {value['fixed_s']} s + {value['per_host_s']} s per app host")
    print(f"written to {out}; logs in {logs}")
    if not args.keep:
        subprocess.run([ROOT / "scripts" / "lab.sh", "down"], check=False)


if __name__ == "__main__":
    main()
