"""Benchmark for issue #20 item 6: a compose deploy against the raw `docker compose up -d` of the same images.

    .venv/bin/python bench/compose/run.py [--rate 50] [--keep] [--no-setup]

Brings up its own hosts, the compose scenario's kind (molecule/compose/molecule.yml): bc-lb1
(nginx), bc-app1 and bc-app2 (each a systemd container running its own Docker engine: the
NET_ADMIN capability, /var/lib/docker on an anonymous volume) and bc-db1 (PostgreSQL, Redis), on
the network bc-net, and provisions them with playbooks/provision.yml and the scenario's compose
file (not measured). Then, in the same run, on the same two app hosts behind the same nginx:

- opsbook: playbooks/deploy.yml with app_runtime compose, v1 (the first deploy), then v2 under
  constant load through bc-lb1 (tests/lab/loadgen.py): the image built on the controller, exported,
  copied and loaded into each host, migrate in a one-off container, host by host out of nginx,
  `docker_compose_v2` up with wait, health gates, back in;
- raw: the project taken down, its images removed from the hosts and the database emptied (so the
  raw side does the same work), then v1 and v2 again by hand with the same image archives (saved
  from the controller's engine after opsbook built them: not measured) and the same compose files
  (each host's rendered compose.yml and RELEASE of that release): host after host, `docker cp` of
  the archive, `docker load`, on the first host `docker compose run --rm web python manage.py
  migrate`, then `docker compose up -d --wait` (it waits for the healthchecks, as opsbook's wait
  does); v2 under the same load. nginx is left alone.

Seconds of each step, the ratio opsbook/raw, and the requests and failed requests under load
during each v2 (a failure: refused or reset after the one retry a browser makes, a timeout or a
5xx; tests/lab/loadgen.py). Writes bench/results/compose-<UTC date>T<HHMM>.json and prints a
table. The hosts are removed at the end (--keep leaves them up, --no-setup reuses them). The
machine is shared: the ratio within the run is what counts.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "lab"))
from loadgen import LoadGenerator  # noqa: E402

PREFIX = "bc"
NETWORK = f"{PREFIX}-net"
LB, APPS, DB = f"{PREFIX}-lb1", (f"{PREFIX}-app1", f"{PREFIX}-app2"), f"{PREFIX}-db1"
IMAGES = {LB: "opsbook/stack:bookworm", APPS[0]: "opsbook/systemd:bookworm", APPS[1]: "opsbook/systemd:bookworm"}
IMAGES[DB] = "opsbook/stack:bookworm"
CACHE = Path(os.environ.get("OPSBOOK_CACHE") or Path.home() / ".cache" / "opsbook")
SCENARIO = ROOT / "molecule" / "compose"
BIN = Path(sys.executable).parent
PROJECT = "journal"
APP_ROOT = "/srv/journal"
SYSTEMD = [
    "--cap-add", "SYS_ADMIN", "--security-opt", "seccomp=unconfined", "--cgroupns=host",
    "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "--tmpfs", "/run", "--tmpfs", "/run/lock",
]  # fmt: skip


def sh(*argv: str, stdin: bytes | None = None, check: bool = True) -> str:
    result = subprocess.run([str(a) for a in argv], input=stdin, capture_output=True, check=False)
    if check and result.returncode != 0:
        sys.exit(f"{' '.join(map(str, argv))} failed (rc {result.returncode}):\n{result.stderr.decode()[-3000:]}")
    return result.stdout.decode()


def on(host: str, *argv: str, check: bool = True) -> str:
    return sh("docker", "exec", host, *argv, check=check)


def wait_booted(name: str) -> None:
    for _ in range(120):
        state = on(name, "systemctl", "is-system-running", check=False).strip()
        if state in ("running", "degraded"):
            return
        time.sleep(0.5)
    sys.exit(f"{name} did not finish booting")


def setup() -> None:
    """The compose scenario's host kind, under this benchmark's own names."""
    if not sh("docker", "network", "ls", "-q", "--filter", f"name=^{NETWORK}$").strip():
        sh("docker", "network", "create", "--label", "org.opsbook.bench=compose", NETWORK)
    for name, image in IMAGES.items():
        sh("docker", "rm", "-f", "-v", name, check=False)
        # A package cache of our own, first filled from the compose scenario's (apt's lock is per cache).
        cache = CACHE / "apt-archives" / name
        seed = CACHE / "apt-archives" / name.replace(f"{PREFIX}-", "mc-")
        if not cache.exists() and seed.is_dir():
            shutil.copytree(seed, cache, ignore=shutil.ignore_patterns("lock", "partial"))
        (cache / "partial").mkdir(parents=True, exist_ok=True)
        extra = ["--cap-add", "NET_ADMIN", "-v", "/var/lib/docker"] if name in APPS else []
        sh(
            "docker", "run", "-d", "--name", name, "--hostname", name, "--network", NETWORK,
            "--label", "org.opsbook.bench=compose", *SYSTEMD, *extra,
            "-v", f"{cache}:/var/cache/apt/archives", image, "/lib/systemd/systemd",
        )  # fmt: skip
    for name in IMAGES:
        wait_booted(name)


def teardown() -> None:
    for name in IMAGES:
        sh("docker", "rm", "-f", "-v", name, check=False)
    sh("docker", "network", "rm", NETWORK, check=False)


def inventory(base: Path) -> Path:
    """The compose scenario's inventory (the lab's group_vars and its zz-compose.yml) for our hosts."""
    path = base / "inventory"
    (path / "group_vars" / "all").mkdir(parents=True)
    for name in ("app.yml", "deploy.yml", "vault.yml"):
        (path / "group_vars" / "all" / name).symlink_to(ROOT / "inventories" / "lab" / "group_vars" / "all" / name)
    zz = (SCENARIO / "group_vars" / "all" / "zz-compose.yml").read_text()
    zz, n = re.subn(r"^app_compose_file: .*$", f"app_compose_file: {SCENARIO / 'templates' / 'compose.yml.j2'}", zz,
                    flags=re.MULTILINE)  # fmt: skip
    assert n == 1, "molecule/compose/group_vars/all/zz-compose.yml names no app_compose_file"
    (path / "group_vars" / "all" / "zz-compose.yml").write_text(zz)
    # The archive path, which the raw side repeats with the same archives: not the scenario's registry (app_image).
    (path / "group_vars" / "all" / "zz-zbench.yml").write_text('app_image: ""\nprovision_docker_daemon_options: {}\n')
    hosts = {
        "all": {
            "vars": {"ansible_connection": "community.docker.docker", "ansible_python_interpreter": "/usr/bin/python3"},
            "children": {
                "lb": {"hosts": {LB: None}},
                "app": {"hosts": dict.fromkeys(APPS)},
                "worker": {"hosts": dict.fromkeys(APPS)},
                "scheduler": {"hosts": {APPS[0]: None}},
                "db": {"hosts": {DB: None}},
                "broker": {"hosts": {DB: None}},
            },
        }
    }
    (path / "hosts.yml").write_text(json.dumps(hosts, indent=2) + "\n")  # JSON is YAML
    return path


def lb_url() -> str:
    fmt = "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}"
    return f"http://{sh('docker', 'inspect', '-f', fmt, LB).split()[0]}/version/"


def timed(action, load_rate: float = 0) -> dict:
    """action() timed, under constant load through bc-lb1 when load_rate is given."""
    load = LoadGenerator(lb_url(), threads=4, rate=load_rate).start() if load_rate else None
    started = time.monotonic()
    try:
        detail = action()
    finally:
        counts = load.stop() if load else None
    out = {"seconds": round(time.monotonic() - started, 1)}
    if counts:
        out["load"] = {k: counts[k] for k in ("sent", "ok", "failed", "retried", "errors", "versions")}
    if detail:
        out.update(detail)
    return out


def playbook(inv: Path, logs: Path, name: str, *extra: str) -> dict:
    log = logs / f"{name.replace('.yml', '')}{'-' + extra[-1].split('=')[-1] if extra else ''}.log"
    result = subprocess.run(
        [BIN / "ansible-playbook", "-i", inv, ROOT / "playbooks" / name, *extra],
        cwd=ROOT, capture_output=True, text=True,
        env={**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"},
    )  # fmt: skip
    log.write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        sys.exit(f"{name} {' '.join(extra)} failed (log {log}):\n{result.stdout[-4000:]}")
    return {}


def release_of(host: str) -> str:
    return on(host, "readlink", f"{APP_ROOT}/current").strip().removeprefix("releases/")


def served(n: int = 6) -> set[str]:
    versions = set()
    for _ in range(n):
        body = on(LB, "curl", "-s", "--max-time", "10", "http://127.0.0.1/version/", check=False)
        versions.add(json.loads(body or "{}").get("version", "?"))
    return versions


def running(host: str) -> dict[str, str]:
    """{service: image} of the project's running containers on host."""
    out = on(host, "docker", "ps", "--filter", f"label=com.docker.compose.project={PROJECT}",
             "--format", '{{.Label "com.docker.compose.service"}} {{.Image}}')  # fmt: skip
    return dict(line.split() for line in out.splitlines())


def save_release(release: str, keep: Path) -> dict:
    """The release's image archive from the controller's engine and each host's compose.yml and RELEASE."""
    (keep / release).mkdir(parents=True)
    archive = keep / release / "image.tar"
    sh("docker", "image", "save", "-o", archive, f"{PROJECT}:{release}")
    for host in APPS:
        for name in ("compose.yml", "RELEASE"):
            text = on(host, "cat", f"{APP_ROOT}/releases/{release}/{name}")
            (keep / release / f"{host}.{name}").write_text(text)
    return {"archive_bytes": archive.stat().st_size}


def reset_hosts() -> None:
    """Back to provisioned: the project down, its images gone from the hosts, an empty database."""
    for host in APPS:
        release = release_of(host)
        on(host, "docker", "compose", "-p", PROJECT, "-f", f"{APP_ROOT}/releases/{release}/compose.yml", "down",
           "--timeout", "60")  # fmt: skip
        tags = on(host, "docker", "image", "ls", PROJECT, "--format", "{{.Repository}}:{{.Tag}}").split()
        if tags:
            on(host, "docker", "image", "rm", *tags)
        on(host, "docker", "image", "prune", "-f")
        on(host, "rm", "-f", f"{APP_ROOT}/current")
    psql = ["runuser", "-u", "postgres", "--", "psql", "-Xq", "-v", "ON_ERROR_STOP=1", "-c"]
    on(DB, *psql, f"DROP DATABASE {PROJECT} WITH (FORCE)")
    on(DB, *psql, f"CREATE DATABASE {PROJECT} OWNER {PROJECT}")


def raw_deploy(release: str, keep: Path) -> dict:
    """By hand, host after host: copy and load the archive, migrate once, `up -d --wait`."""
    steps: dict[str, float] = {}
    archive = keep / release / "image.tar"
    for i, host in enumerate(APPS):
        project_dir = f"/srv/raw/{release}"
        t = time.monotonic()
        on(host, "mkdir", "-p", project_dir)
        sh("docker", "cp", archive, f"{host}:/tmp/{release}.tar")
        for name in ("compose.yml", "RELEASE"):
            sh("docker", "cp", keep / release / f"{host}.{name}", f"{host}:{project_dir}/{name}")
        steps[f"{host} copy"] = round(time.monotonic() - t, 1)
        t = time.monotonic()
        on(host, "docker", "load", "-q", "-i", f"/tmp/{release}.tar")
        on(host, "rm", "-f", f"/tmp/{release}.tar")
        steps[f"{host} load"] = round(time.monotonic() - t, 1)
        compose = ["docker", "compose", "-p", PROJECT, "--project-directory", project_dir, "-f",
                   f"{project_dir}/compose.yml"]  # fmt: skip
        if i == 0:
            t = time.monotonic()
            on(host, *compose, "run", "--rm", "--no-deps", "web", "python", "manage.py", "migrate", "--noinput")
            steps["migrate"] = round(time.monotonic() - t, 1)
        t = time.monotonic()
        on(host, *compose, "up", "-d", "--wait", "--wait-timeout", "120", "--remove-orphans")
        steps[f"{host} up"] = round(time.monotonic() - t, 1)
    return {"steps": steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=50.0, help="requests per second through bc-lb1 during v2")
    parser.add_argument("--keep", action="store_true", help="leave the hosts up")
    parser.add_argument("--no-setup", action="store_true", help="reuse hosts already provisioned (--keep)")
    parser.add_argument("--out", type=Path, help="result file (default bench/results/compose-<date>.json)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="opsbook-bench-compose-"))
    logs, keep = work / "logs", work / "releases"
    logs.mkdir()
    inv = inventory(work)
    print(f"logs in {logs}", flush=True)
    result: dict = {
        "benchmark": "compose",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "hosts": {"lb": LB, "app": list(APPS), "db": DB},
        "rate": args.rate,
    }
    releases: list[str] = []
    try:
        if not args.no_setup:
            result["setup"] = timed(setup)
            result["provision"] = timed(lambda: playbook(inv, logs, "provision.yml"))
            print(f"hosts up and provisioned in {result['setup']['seconds'] + result['provision']['seconds']:.0f} s",
                  flush=True)  # fmt: skip

        ours = {}
        ours["v1"] = timed(lambda: playbook(inv, logs, "deploy.yml", "-e", "deploy_ref=v1"))
        releases.append(release_of(APPS[0]))
        ours["v2"] = timed(lambda: playbook(inv, logs, "deploy.yml", "-e", "deploy_ref=v2"), args.rate)
        releases.append(release_of(APPS[1]))
        ours["served"] = sorted(served())
        assert ours["served"] == [releases[1]], ours["served"]
        print(f"opsbook: v1 {ours['v1']['seconds']} s, v2 {ours['v2']['seconds']} s under load", flush=True)
        for release in releases:
            save_release(release, keep)
        reset_hosts()

        raw = {}
        raw["v1"] = timed(lambda: raw_deploy(releases[0], keep))
        raw["v2"] = timed(lambda: raw_deploy(releases[1], keep), args.rate)
        raw["served"] = sorted(served())
        assert raw["served"] == [releases[1]], raw["served"]
        for host in APPS:
            assert set(running(host).values()) == {f"{PROJECT}:{releases[1]}"}, running(host)
        print(f"raw: v1 {raw['v1']['seconds']} s, v2 {raw['v2']['seconds']} s under load", flush=True)
    finally:
        if not args.keep:
            teardown()
        # The images opsbook built on the controller's engine for this run.
        for release in releases:
            sh("docker", "image", "rm", f"{PROJECT}:{release}", check=False)

    result.update(releases=releases, ours=ours, raw=raw)
    result["ratio"] = {
        step: round(ours[step]["seconds"] / raw[step]["seconds"], 2) for step in ("v1", "v2")
    }  # fmt: skip
    result["ratio"]["total"] = round(
        (ours["v1"]["seconds"] + ours["v2"]["seconds"]) / (raw["v1"]["seconds"] + raw["v2"]["seconds"]), 2
    )
    out = args.out or ROOT / "bench" / "results" / (
        f"compose-{datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%dT%H%M')}.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")

    print(f"{'':8} {'v1 s':>6} {'v2 s':>6} {'requests':>9} {'failed':>7}")
    for name, r in (("opsbook", ours), ("raw", raw)):
        print(f"{name:8} {r['v1']['seconds']:>6} {r['v2']['seconds']:>6} {r['v2']['load']['sent']:>9}"
              f" {r['v2']['load']['failed']:>7}")  # fmt: skip
    ratio = result["ratio"]
    print(f"ratio opsbook/raw: v1 {ratio['v1']}, v2 {ratio['v2']}, total {ratio['total']}")
    print(f"written to {out}")
    shutil.rmtree(keep, ignore_errors=True)


if __name__ == "__main__":
    main()
