"""Benchmark for issue #6: celery_inspect latency against `celery inspect ping`, and drain overhead.

    .venv/bin/python bench/celery/run.py [--runs 10] [--drain-runs 3] [--task-seconds 3]

In one run, on this machine, with services it starts itself and stops at the end (also on
Ctrl-C or an error):

- a throwaway Redis (tests/helpers.py) and two Celery workers of
  tests/unit/plugins/modules/celery_testapp.py (alpha: celery, q_alpha; beta: celery, q_beta),
  started as the module tests start them (celery_fixtures.start_celery_worker);
- latency, N runs each, interleaved round by round so load drift hits every line alike:
    cli_ping              `celery -A celery_testapp inspect ping` (no destination)
    cli_ping_dest         the same with `-d alpha@...,beta@...`
    ansible_cli_ping_dest that CLI through `ansible localhost -m command` (how a playbook shells out)
    import_floor          `python -c "import celery, kombu.transport.redis, ansible.module_utils.basic"`
                          (reference: what any Python process that talks to Celery pays first)
    inspect_in_process    opsbook.webstack.celery_inspect's main() in this process (run_module):
                          collect [ping, active], three queues, destination [alpha, beta]
    inspect_process       the same module as its own Python process, arguments in a JSON file
                          (`python -m ...celery_inspect args.json`): interpreter, imports, run
    inspect_ansible       `ansible localhost -m opsbook.webstack.celery_inspect` (controller,
                          AnsiballZ payload, module process), same arguments
  and the ratio of each module line to each CLI line. The goal (at most half the CLI time) is
  judged like for like: the module process against the CLI with a destination, the Ansible task
  against the CLI run by Ansible (LIKE_FOR_LIKE);
- drain overhead: a task sleeping --task-seconds on alpha, then celery_control drain of alpha;
  overhead = drain wall time - the time the task still had to run when drain started (task start
  from the worker's `active` reply, task run time from the worker's "succeeded in" log line);
  consumers are added back after each run.

Writes bench/results/celery-<UTC date>.json (raw samples, machine info) and prints a table.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
TESTS = REPO_ROOT / "tests"
MODULE_TESTS = TESTS / "unit" / "plugins" / "modules"
COLLECTIONS = REPO_ROOT / "playbooks" / "collections"
RESULTS = REPO_ROOT / "bench" / "results"
for _path in (TESTS, MODULE_TESTS, COLLECTIONS):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import helpers  # noqa: E402  (tests/helpers.py, after the sys.path setup above)
import pytest  # noqa: E402  (celery_fixtures' wait_ready reports a worker that never came up with pytest.fail)
from celery_fixtures import node, run_module, send, start_celery_worker, wait_ready  # noqa: E402

VENV_BIN = Path(sys.executable).parent
WORKERS = {"alpha": ["celery", "q_alpha"], "beta": ["celery", "q_beta"]}
# Three queues: two consumed, one nobody consumes (seeded with 3 messages, one of them in a
# priority sub-queue, so the depth has something to count).
QUEUES = ["celery", "q_alpha", "q_unconsumed"]
UNCONSUMED_SEED = 3
INSPECT_MODULE = "ansible_collections.opsbook.webstack.plugins.modules.celery_inspect"

LINES = {
    "cli_ping": "`celery -A celery_testapp inspect ping` (no destination, timeout 1 s)",
    "cli_ping_dest": "`celery -A celery_testapp inspect ping -d alpha@…,beta@…`",
    "ansible_cli_ping_dest": "`ansible localhost -m command -a 'celery … inspect ping -d alpha@…,beta@…'`",
    "import_floor": "`python -c 'import celery, kombu.transport.redis, ansible.module_utils.basic'` (reference)",
    "inspect_in_process": "celery_inspect main() in process: ping + active + 3 queues, destination of 2",
    "inspect_process": "celery_inspect as its own process (python -m, args file): same",
    "inspect_ansible": "`ansible localhost -m opsbook.webstack.celery_inspect`: same",
}
CLI_LINES = ("cli_ping", "cli_ping_dest", "ansible_cli_ping_dest")
MODULE_LINES = ("inspect_in_process", "inspect_process", "inspect_ansible")
# The goal compares like with like: a process with a process, an Ansible task with an Ansible task.
# The in-process line (the module's own work once Python and Celery are imported) has no CLI twin;
# it is compared with the CLI with a destination.
LIKE_FOR_LIKE = {
    "inspect_in_process": "cli_ping_dest",
    "inspect_process": "cli_ping_dest",
    "inspect_ansible": "ansible_cli_ping_dest",
}
IMPORTS = "import celery, kombu.transport.redis, ansible.module_utils.basic"


class BenchError(RuntimeError):
    pass


# --------------------------------------------------------------------------- small tools


def median(values: list[float]) -> float:
    return statistics.median(values)


def p95(values: list[float]) -> float:
    """Linear interpolation between closest ranks (with 10 samples: between the 9th and the 10th)."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=20, method="inclusive")[18]


def tool_version(argv: list[str]) -> str | None:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    return None


def machine_info() -> dict:
    import celery
    import kombu

    info = {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
        "platform": platform.platform(),
        "python": platform.python_version(),
        "celery": celery.__version__,
        "kombu": kombu.__version__,
        "ansible_core": None,
        "redis_server": tool_version([helpers.find_redis_server(), "--version"]),
    }
    with contextlib.suppress(ImportError):
        from ansible.release import __version__ as ansible_core

        info["ansible_core"] = ansible_core
    with contextlib.suppress(OSError):
        info["memory_total_kb"] = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
    return info


def _raise_on_sigterm(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


# --------------------------------------------------------------------------- the measured calls


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.redis: helpers.RedisServer | None = None
        self.workers: dict[str, helpers.ManagedProcess] = {}
        self.url = ""
        self.destination = [node(name) for name in sorted(WORKERS)]

    # ---- services

    def start(self) -> None:
        self.redis = helpers.start_redis()
        self.url = self.redis.url_for(0)
        log_dir = self.work / "logs"
        for name, queues in WORKERS.items():
            self.workers[name] = start_celery_worker(name, queues, self.url, log_dir, wait=False)
        for name, process in self.workers.items():
            wait_ready(process, name, self.url)  # the log says ready and it answers a ping
        for i in range(UNCONSUMED_SEED):
            send(self.url, "celery_testapp.add", (i, i), queue="q_unconsumed", priority=6 if i == 0 else 0)

    def stop(self) -> None:
        helpers.stop_processes(list(self.workers.values()))
        if self.redis is not None:
            helpers.stop_redis(self.redis)
            self.redis = None

    def cli_env(self) -> dict[str, str]:
        # The broker URL goes in the environment (celery_testapp reads it), not argv, as in the tests.
        return helpers.minimal_env(
            CELERY_TESTAPP_BROKER=self.url, PYTHONPATH=str(MODULE_TESTS), HOME=str(self.work / "home")
        )

    # ---- latency

    def inspect_args(self) -> dict:
        return {
            "broker_url": self.url,
            "destination": self.destination,
            "collect": ["ping", "active"],
            "queues": QUEUES,
        }

    def check_inspect(self, data: dict, what: str) -> None:
        if data.get("failed"):
            raise BenchError(f"{what} failed: {data.get('msg')}")
        if data.get("worker_names") != self.destination:
            raise BenchError(f"{what}: workers {data.get('worker_names')} answered, expected {self.destination}")
        depths = {name: info.get("depth") for name, info in (data.get("queues") or {}).items()}
        if sorted(depths) != sorted(QUEUES) or depths.get("q_unconsumed") != UNCONSUMED_SEED:
            raise BenchError(f"{what}: queue depths {depths}, expected {QUEUES} with q_unconsumed={UNCONSUMED_SEED}")

    def cli_ping(self, destination: bool) -> float:
        argv = [str(VENV_BIN / "celery"), "-A", "celery_testapp", "inspect", "ping"]
        if destination:
            argv += ["-d", ",".join(self.destination)]
        started = time.perf_counter()
        out = subprocess.run(
            argv, env=self.cli_env(), cwd=MODULE_TESTS, capture_output=True, text=True, timeout=60, check=False
        )
        elapsed = time.perf_counter() - started
        if out.returncode != 0 or f"{len(self.destination)} nodes online" not in out.stdout:
            raise BenchError(f"{' '.join(argv[1:])} exited {out.returncode}:\n{out.stdout}\n{out.stderr}")
        return elapsed

    def inspect_in_process(self) -> float:
        started = time.perf_counter()
        result = run_module("celery_inspect", self.inspect_args())
        elapsed = time.perf_counter() - started
        self.check_inspect(result.data, "celery_inspect in process")
        return elapsed

    def inspect_process(self) -> float:
        args_file = self.work / "inspect-args.json"
        if not args_file.exists():
            args_file.touch(mode=0o600)
            args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": self.inspect_args()}))
        argv = [sys.executable, "-m", INSPECT_MODULE, str(args_file)]
        env = helpers.minimal_env(PYTHONPATH=str(COLLECTIONS), HOME=str(self.work / "home"))
        started = time.perf_counter()
        out = subprocess.run(argv, env=env, cwd=self.work, capture_output=True, text=True, timeout=60, check=False)
        elapsed = time.perf_counter() - started
        try:
            data = json.loads(out.stdout)
        except ValueError:
            raise BenchError(f"celery_inspect process printed no JSON:\n{out.stdout}\n{out.stderr}") from None
        self.check_inspect(data, "celery_inspect process")
        return elapsed

    def ansible_env(self, **extra: str) -> dict[str, str]:
        return {
            **helpers.minimal_env(HOME=str(self.work / "home")),
            "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS),
            "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
            "ANSIBLE_LOCALHOST_WARNING": "0",
            "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
            "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
            "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_LOCAL_TEMP": str(self.work / "ansible-tmp"),
            "ANSIBLE_REMOTE_TEMP": str(self.work / "ansible-tmp"),
            **extra,
        }

    def run_ansible(self, argv: list[str], env: dict[str, str], what: str) -> tuple[float, dict]:
        """`ansible localhost -m ...` with the json callback: wall time and the host's result."""
        started = time.perf_counter()
        # cwd: the bench's work directory, so no ansible.cfg of the checkout is read (as in AWX).
        out = subprocess.run(argv, env=env, cwd=self.work, capture_output=True, text=True, timeout=120, check=False)
        elapsed = time.perf_counter() - started
        try:
            data = json.loads(out.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
        except (ValueError, KeyError, IndexError):
            raise BenchError(f"{what} exited {out.returncode}:\n{out.stdout}\n{out.stderr}") from None
        return elapsed, data

    def ansible_cli_ping(self) -> float:
        """The CLI as a playbook would shell out to it: the command module on the host, broker in its environment."""
        command = f"celery -A celery_testapp inspect ping -d {','.join(self.destination)} chdir={MODULE_TESTS}"
        argv = [str(VENV_BIN / "ansible"), "localhost", "-m", "ansible.builtin.command", "-a", command]
        # With the local connection the module inherits the controller's environment (and PATH finds celery).
        env = self.ansible_env(**{k: v for k, v in self.cli_env().items() if k.startswith(("CELERY_", "PYTHON"))})
        env["PATH"] = f"{VENV_BIN}:{env['PATH']}"
        elapsed, data = self.run_ansible(argv, env, "ansible -m command celery inspect ping")
        if data.get("rc") != 0 or f"{len(self.destination)} nodes online" not in data.get("stdout", ""):
            raise BenchError(f"ansible -m command celery inspect ping: {data.get('msg')} {data.get('stdout')}")
        return elapsed

    def import_floor(self) -> float:
        env = helpers.minimal_env(HOME=str(self.work / "home"))
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", IMPORTS], env=env, cwd=self.work, timeout=60, check=True)
        return time.perf_counter() - started

    def inspect_ansible(self) -> float:
        vars_file = self.work / "ansible-vars.json"
        if not vars_file.exists():
            vars_file.touch(mode=0o600)
            vars_file.write_text(json.dumps({"bench_broker_url": self.url}))
        module_args = {**self.inspect_args(), "broker_url": "{{ bench_broker_url }}"}
        argv = [
            str(VENV_BIN / "ansible"),
            "localhost",
            "-m",
            "opsbook.webstack.celery_inspect",
            "-a",
            json.dumps(module_args),
            "-e",
            f"@{vars_file}",
        ]
        elapsed, data = self.run_ansible(argv, self.ansible_env(), "ansible -m celery_inspect")
        self.check_inspect(data, "ansible -m celery_inspect")
        return elapsed

    def latency(self) -> dict[str, list[float]]:
        calls = {
            "cli_ping": lambda: self.cli_ping(destination=False),
            "cli_ping_dest": lambda: self.cli_ping(destination=True),
            "ansible_cli_ping_dest": self.ansible_cli_ping,
            "import_floor": self.import_floor,
            "inspect_in_process": self.inspect_in_process,
            "inspect_process": self.inspect_process,
            "inspect_ansible": self.inspect_ansible,
        }
        if self.args.no_ansible:
            del calls["inspect_ansible"], calls["ansible_cli_ping_dest"]
        # One untimed call of each: imports in this process, page cache, AnsiballZ cache.
        warmup = {name: call() for name, call in calls.items()}
        samples: dict[str, list[float]] = {name: [] for name in calls}
        for round_ in range(self.args.runs):
            for name, call in calls.items():
                samples[name].append(call())
            print(f"  latency round {round_ + 1}/{self.args.runs} done", file=sys.stderr)
        samples["_warmup"] = [warmup[name] for name in calls]
        return samples

    # ---- drain

    def task_runtime_from_log(self, worker: str, task_id: str, timeout: float = 10) -> float:
        pattern = re.compile(rf"Task celery_testapp\.sleep\[{re.escape(task_id)}\] succeeded in ([0-9.eE+-]+)s")
        log = self.workers[worker].log_path

        def found():
            match = pattern.search(log.read_text(errors="replace"))
            return float(match.group(1)) if match else None

        return helpers.wait_until(found, timeout, interval=0.05, what=f"{task_id} succeeded in {log}")

    def wait_active(self, worker: str, task_id: str, timeout: float = 15) -> dict:
        def active():
            result = run_module(
                "celery_inspect", {"broker_url": self.url, "destination": [node(worker)], "collect": ["active"]}
            )
            for task in result["workers"][node(worker)].get("active") or []:
                if task["id"] == task_id:
                    return task
            return None

        return helpers.wait_until(active, timeout, interval=0.02, what=f"{task_id} active on {node(worker)}")

    def resume(self, worker: str) -> None:
        result = run_module(
            "celery_control",
            {
                "broker_url": self.url,
                "action": "add_consumer",
                "destination": [node(worker)],
                "queues": WORKERS[worker],
                "wait_timeout": 15,
            },
        )
        if result.failed or sorted(result["workers"][node(worker)]["after"]) != sorted(WORKERS[worker]):
            raise BenchError(f"add_consumer after drain: {result.msg or result.data}")

    def drain_once(self, poll_interval: float) -> dict:
        worker, seconds = "alpha", self.args.task_seconds
        task_id = send(self.url, "celery_testapp.sleep", (seconds,), queue="q_alpha")
        task = self.wait_active(worker, task_id)
        time_start = float(task["time_start"])  # the worker's wall clock when the task was accepted
        args = {
            "broker_url": self.url,
            "action": "drain",
            "destination": [node(worker)],
            "wait_timeout": seconds + 30,
            "poll_interval": poll_interval,
        }
        wall_start, started = time.time(), time.perf_counter()
        result = run_module("celery_control", args)
        drain_wall = time.perf_counter() - started
        try:
            if result.failed or result["drained"] is not True:
                raise BenchError(f"drain failed: {result.msg or result.data}")
            runtime = self.task_runtime_from_log(worker, task_id)
            task_end = time_start + runtime
            remaining = task_end - wall_start
            return {
                "poll_interval": poll_interval,
                "task_seconds": seconds,
                "task_id": task_id,
                "task_runtime_s": runtime,
                "task_ran_before_drain_s": round(wall_start - time_start, 4),
                "remaining_task_s": round(remaining, 4),
                "drain_wall_s": round(drain_wall, 4),
                "overhead_s": round(drain_wall - remaining, 4),
                "module_waited_s": result.data.get("waited"),
                "plan": result.data.get("plan"),
                "confirmed": result.data.get("confirmed"),
            }
        finally:
            self.resume(worker)

    def drain(self) -> list[dict]:
        runs = []
        for poll_interval in self.args.drain_poll:
            for i in range(self.args.drain_runs):
                run = self.drain_once(poll_interval)
                runs.append(run)
                print(
                    f"  drain poll {poll_interval:g}s run {i + 1}/{self.args.drain_runs}: "
                    f"wall {run['drain_wall_s']:.3f}s, remaining task {run['remaining_task_s']:.3f}s, "
                    f"overhead {run['overhead_s'] * 1000:.0f} ms",
                    file=sys.stderr,
                )
        return runs


# --------------------------------------------------------------------------- report


def summarize(samples: dict[str, list[float]], drain_runs: list[dict], poll_intervals: list[float]) -> dict:
    latency = {}
    for name, values in samples.items():
        if name.startswith("_"):
            continue
        latency[name] = {
            "description": LINES[name],
            "n": len(values),
            "median_ms": round(median(values) * 1000, 1),
            "p95_ms": round(p95(values) * 1000, 1),
            "min_ms": round(min(values) * 1000, 1),
            "max_ms": round(max(values) * 1000, 1),
        }
    ratios = {}
    for line in MODULE_LINES:
        if line not in latency:
            continue
        ratios[line] = {
            cli: round(latency[line]["median_ms"] / latency[cli]["median_ms"], 3) for cli in CLI_LINES if cli in latency
        }
    drain = {}
    for poll in poll_intervals:
        runs = [r for r in drain_runs if r["poll_interval"] == poll]
        if runs:
            overheads = [r["overhead_s"] for r in runs]
            drain[f"{poll:g}"] = {
                "poll_interval": poll,
                "n": len(runs),
                "overhead_median_ms": round(median(overheads) * 1000, 1),
                "overhead_max_ms": round(max(overheads) * 1000, 1),
                "drain_wall_median_s": round(median([r["drain_wall_s"] for r in runs]), 3),
                "remaining_task_median_s": round(median([r["remaining_task_s"] for r in runs]), 3),
            }
    goal = {
        "statement": "celery_inspect (ping + active + 3 queue depths, destination list) takes at most half "
        "the time of `celery inspect ping` on the command line (median ratio <= 0.5)",
        "like_for_like": {line: cli for line, cli in LIKE_FOR_LIKE.items() if line in ratios and cli in latency},
        "met": {
            line: ratios[line][cli] <= 0.5 for line, cli in LIKE_FOR_LIKE.items() if line in ratios and cli in latency
        },
        "met_against_every_baseline": {
            line: {cli: ratio <= 0.5 for cli, ratio in by_cli.items()} for line, by_cli in ratios.items()
        },
    }
    return {"latency": latency, "ratios": ratios, "goal": goal, "drain": drain}


def print_table(summary: dict, machine: dict) -> None:
    lat, ratios = summary["latency"], summary["ratios"]
    print()
    print(f"nproc {machine['nproc']}, load average at start {' '.join(f'{x:.2f}' for x in machine['loadavg_start'])}")
    columns = {"cli_ping_dest": "/ cli -d", "cli_ping": "/ cli", "ansible_cli_ping_dest": "/ ans cli -d"}
    header = " ".join(f"{title:>12}" for title in columns.values())
    print(f"{'line':<22} {'n':>3} {'median ms':>10} {'p95 ms':>9} {header}  goal (like for like)")
    for name, row in lat.items():
        r = ratios.get(name, {})
        cells = " ".join(f"{r[cli]:>12.2f}" if cli in r else f"{'-':>12}" for cli in columns)
        met = summary["goal"]["met"].get(name)
        goal = "" if met is None else f"{'met' if met else 'NOT met'} (vs {LIKE_FOR_LIKE[name]})"
        print(f"{name:<22} {row['n']:>3} {row['median_ms']:>10.1f} {row['p95_ms']:>9.1f} {cells}  {goal}".rstrip())
    print()
    print(f"{'drain poll_interval':<22} {'n':>3} {'overhead median ms':>19} {'max ms':>8} {'wall median s':>14}")
    for row in summary["drain"].values():
        print(
            f"{row['poll_interval']:<22g} {row['n']:>3} {row['overhead_median_ms']:>19.1f} "
            f"{row['overhead_max_ms']:>8.1f} {row['drain_wall_median_s']:>14.3f}"
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="latency samples per line (default 10)")
    parser.add_argument("--drain-runs", type=int, default=3, help="drain runs per poll interval (default 3)")
    parser.add_argument("--task-seconds", type=float, default=3.0, help="how long the drained task sleeps")
    parser.add_argument(
        "--drain-poll",
        type=lambda s: [float(x) for x in s.split(",")],
        default=[0.5, 0.1],
        help="celery_control poll_interval values for the drain runs, comma-separated (default 0.5,0.1; "
        "0.5 is the module's default)",
    )
    parser.add_argument("--no-ansible", action="store_true", help="skip the two `ansible localhost -m` lines")
    parser.add_argument("--output", type=Path, help="JSON file (default bench/results/celery-<UTC date>.json)")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.drain_runs < 0:
        parser.error("--runs must be at least 1 and --drain-runs at least 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started_at = datetime.datetime.now(datetime.UTC)
    machine = machine_info()
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    work = Path(tempfile.mkdtemp(prefix="opsbook-bench-celery-"))
    (work / "home").mkdir()
    bench = Bench(args, work)
    ok = False
    try:
        print(f"starting Redis and 2 Celery workers (work dir {work})", file=sys.stderr)
        t0 = time.perf_counter()
        bench.start()
        setup_s = time.perf_counter() - t0
        samples = bench.latency()
        drain_runs = bench.drain() if args.drain_runs else []
        ok = True
    except (BenchError, helpers.HarnessError, TimeoutError, pytest.fail.Exception) as exc:
        print(f"bench/celery failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        print(f"bench/celery interrupted ({str(exc) or 'Ctrl-C'}); stopping what it started", file=sys.stderr)
        return 130
    finally:
        bench.stop()
        # The broker URL (with its password) is in these; the logs are kept on failure, not these.
        for name in ("inspect-args.json", "ansible-vars.json"):
            (work / name).unlink(missing_ok=True)
        if ok:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"logs kept in {work}", file=sys.stderr)

    machine["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    summary = summarize(samples, drain_runs, args.drain_poll)
    finished_at = datetime.datetime.now(datetime.UTC)
    record = {
        "benchmark": "celery",
        "issue": 6,
        "command": " ".join([".venv/bin/python bench/celery/run.py", *(argv if argv is not None else sys.argv[1:])]),
        "started_at": started_at.isoformat(timespec="seconds"),
        "duration_s": round((finished_at - started_at).total_seconds(), 1),
        "setup_s": round(setup_s, 2),
        "config": {
            "runs": args.runs,
            "drain_runs": args.drain_runs,
            "task_seconds": args.task_seconds,
            "drain_poll_intervals": args.drain_poll,
            "workers": {node(name): queues for name, queues in WORKERS.items()},
            "worker_concurrency": 1,
            "inspect_args": {k: v for k, v in bench.inspect_args().items() if k != "broker_url"},
            "timeout_s": 1.0,
        },
        "machine": machine,
        **summary,
        "raw": {
            "latency_s": {k: [round(v, 5) for v in vs] for k, vs in samples.items() if not k.startswith("_")},
            "warmup_s": dict(zip([k for k in samples if not k.startswith("_")], samples["_warmup"], strict=True)),
            "drain_runs": drain_runs,
        },
    }
    output = args.output or RESULTS / f"celery-{started_at:%Y-%m-%d}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(record, indent=2) + "\n")
    print_table(summary, machine)
    print(f"\nwritten {output.relative_to(REPO_ROOT) if output.is_relative_to(REPO_ROOT) else output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
