"""Benchmark for issue #3: our backup and restore against raw pg_dump / pg_restore, and verification speed.

    .venv/bin/python bench/backup/run.py [--sizes-mb 8,400,1100] [--repeat 3] [--skip-restore] [--drop]

Runs against the lab's db1 (`${OPSBOOK_LAB:-opsbook-lab}-db1`, PostgreSQL 15; bring the lab up
with scripts/demo.sh), in databases of its own (bench_<MB>), never the app's. In one run:

- data: for each size, a database of application-like rows (customers with JSON profiles,
  orders with JSON line items and notes, an event log with JSON payloads and messages made of
  random words from a 5,000-word vocabulary and random hex), grown until pg_database_size
  reaches the target; kept between runs (dropped with --drop);
- backup, for each size: raw `pg_dump -Fc` (default compression, as ours) into a file on db1,
  against `ansible-playbook playbooks/backup.yml` on the same database (dump with counts in one
  snapshot, manifest, `content` verification, atomic publish; media and config archives off),
  wall time of the whole playbook run from this controller;
- restore, for each size: raw `createdb` + `pg_restore -j2` of that archive, against
  `playbooks/restore.yml -e restore_mode=drill` (verify the backup, restore it with -j2 into a
  scratch database, compare row counts with the manifest, drop it: the whole data path of a
  restore, without the service stop/start of the lab app, which does not depend on the size);
- each raw/ours pair runs --repeat times (3), alternately, and the medians are fitted: one run
  each drifted by 2-3 s at 30 s on this shared 2-CPU machine, enough to swing a ratio by 0.1;
- the fit: ours = overhead + ratio * raw by least squares over the sizes, against the goals
  (backup <= 1.10 x raw + 5 s, restore <= 1.15 x raw + 10 s);
- verification, on the largest backup: each pg_dump_verify level's own time (the module's
  `durations`) and throughput in MB of archive per second, beside `sha256sum` and
  `pg_restore -f /dev/null` on the same file.

Writes bench/results/backup-<UTC date>T<HHMM>.json (a second run the same day keeps the first) and prints a table.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
RESULTS = REPO_ROOT / "bench" / "results"
BIN = Path(sys.executable).parent
LAB = os.environ.get("OPSBOOK_LAB") or "opsbook-lab"
DB_CONTAINER = f"{LAB}-db1"
BENCH_DIR = "/var/backups/opsbook-bench"
RAW_DIR = "/var/tmp/opsbook-bench"
GOALS = {"backup": {"ratio": 1.10, "overhead": 5.0}, "restore": {"ratio": 1.15, "overhead": 10.0}}
LEVELS = ["header", "structure", "read", "content", "restore"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS customers (
  id bigserial PRIMARY KEY, email text NOT NULL, name text NOT NULL,
  created_at timestamptz NOT NULL, profile jsonb NOT NULL);
CREATE TABLE IF NOT EXISTS orders (
  id bigserial PRIMARY KEY, customer_id bigint NOT NULL, status text NOT NULL,
  total numeric(12,2) NOT NULL, created_at timestamptz NOT NULL, items jsonb NOT NULL, note text);
CREATE TABLE IF NOT EXISTS events (
  id bigserial PRIMARY KEY, ts timestamptz NOT NULL, kind text NOT NULL,
  payload jsonb NOT NULL, message text NOT NULL);
CREATE INDEX IF NOT EXISTS orders_customer ON orders (customer_id);
CREATE INDEX IF NOT EXISTS events_ts ON events (ts);
"""

# One batch: 2,000 customers, 8,000 orders, 20,000 events (about 13 MB on disk). Words are
# drawn from a fixed vocabulary of pseudo-words (so text compresses like prose, about 3:1),
# plus hex tokens and numbers that do not compress at all.
BATCH = """
WITH v AS (SELECT array_agg(substr(md5('w' || i), 1, 3 + i % 8)) AS w FROM generate_series(1, 5000) i),
c AS (
  INSERT INTO customers (email, name, created_at, profile)
  SELECT md5(random()::text) || '@example.com',
         initcap(v.w[1 + (random() * 4999)::int]) || ' ' || initcap(v.w[1 + (random() * 4999)::int]),
         now() - random() * interval '900 days',
         jsonb_build_object('plan', (ARRAY['free', 'pro', 'team'])[1 + (random() * 2)::int],
           'locale', (ARRAY['en', 'de', 'fr', 'es', 'pt'])[1 + (random() * 4)::int],
           'bio', v.w[1 + (random() * 4999)::int] || ' ' || v.w[1 + (random() * 4999)::int] || ' '
                  || v.w[1 + (random() * 4999)::int] || ' ' || v.w[1 + (random() * 4999)::int],
           'score', round((random() * 1000)::numeric, 2), 'token', md5(random()::text))
  FROM v, generate_series(1, 2000) RETURNING id),
o AS (
  INSERT INTO orders (customer_id, status, total, created_at, items, note)
  SELECT (random() * 1000000)::bigint, (ARRAY['new', 'paid', 'shipped', 'refunded'])[1 + (random() * 3)::int],
         round((random() * 2000)::numeric, 2), now() - random() * interval '900 days',
         jsonb_build_array(
           jsonb_build_object('sku', upper(substr(md5(random()::text), 1, 10)), 'qty', 1 + (random() * 4)::int,
                              'price', round((random() * 300)::numeric, 2), 'name', v.w[1 + (random() * 4999)::int]),
           jsonb_build_object('sku', upper(substr(md5(random()::text), 1, 10)), 'qty', 1 + (random() * 4)::int,
                              'price', round((random() * 300)::numeric, 2), 'name', v.w[1 + (random() * 4999)::int])),
         CASE WHEN random() < 0.5 THEN v.w[1 + (random() * 4999)::int] || ' ' || v.w[1 + (random() * 4999)::int]
              || ' ' || v.w[1 + (random() * 4999)::int] || ' ' || v.w[1 + (random() * 4999)::int] END
  FROM v, generate_series(1, 8000) RETURNING id)
INSERT INTO events (ts, kind, payload, message)
SELECT now() - random() * interval '90 days',
       (ARRAY['login', 'view', 'search', 'checkout', 'error'])[1 + (random() * 4)::int],
       jsonb_build_object('ip', (random() * 255)::int || '.' || (random() * 255)::int || '.'
                                || (random() * 255)::int || '.' || (random() * 255)::int,
                          'session', md5(random()::text), 'ms', (random() * 3000)::int,
                          'path', '/' || v.w[1 + (random() * 4999)::int] || '/' || v.w[1 + (random() * 4999)::int],
                          'ua', 'Mozilla/5.0 (' || v.w[1 + (random() * 4999)::int] || ') ' || md5(random()::text)),
       v.w[1 + (random() * 4999)::int] || ' ' || v.w[1 + (random() * 4999)::int] || ' '
       || v.w[1 + (random() * 4999)::int] || ' ' || v.w[1 + (random() * 4999)::int] || ' '
       || v.w[1 + (random() * 4999)::int] || ' ' || v.w[1 + (random() * 4999)::int] || ' '
       || v.w[1 + (random() * 4999)::int] || ' ' || v.w[1 + (random() * 4999)::int] || ' '
       || v.w[1 + (random() * 4999)::int] || ' ' || v.w[1 + (random() * 4999)::int] || ' id '
       || md5(random()::text) || ' took ' || (random() * 3000)::int || ' ms'
FROM v, generate_series(1, 20000)
"""


SEED_MB = 100
NO_PARALLEL = ("max_parallel_workers_per_gather", "max_parallel_maintenance_workers")
GROW = """
SET max_parallel_workers_per_gather = 0;  -- the container's /dev/shm is 64 MB
INSERT INTO customers (email, name, created_at, profile)
  SELECT md5(random()::text) || '@example.com', name, created_at - interval '1 day' * random(), profile
  FROM customers TABLESAMPLE SYSTEM (50);
INSERT INTO orders (customer_id, status, total, created_at, items, note)
  SELECT (random() * 1000000)::bigint, status, total, created_at - interval '1 day' * random(), items, note
  FROM orders TABLESAMPLE SYSTEM (50);
INSERT INTO events (ts, kind, payload, message)
  SELECT ts - interval '1 day' * random(), kind, payload, message FROM events TABLESAMPLE SYSTEM (50);
"""


def log(msg: str) -> None:
    print(f"[bench] {datetime.datetime.now(datetime.UTC):%H:%M:%S} {msg}", flush=True)


def db_exec(*argv: str, user: str = "postgres", check: bool = True, timeout: int = 3600) -> subprocess.CompletedProcess:
    cmd = ["docker", "exec", "--user", user, DB_CONTAINER, *argv]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:4])}… failed ({result.returncode}): {result.stderr[-2000:]}")
    return result


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    start = time.monotonic()
    out = fn(*args, **kwargs)
    return round(time.monotonic() - start, 3), out


def psql(db: str, sql: str) -> str:
    return db_exec("psql", "-X", "-v", "ON_ERROR_STOP=1", "-d", db, "-tAc", sql).stdout.strip()


def db_size(db: str) -> int:
    return int(psql(db, "SELECT pg_database_size(current_database())"))


def ensure_database(db: str, target_mb: int) -> dict:
    if psql("postgres", f"SELECT count(*) FROM pg_database WHERE datname = '{db}'") == "0":
        db_exec("createdb", db)
    psql(db, SCHEMA)
    start = time.monotonic()
    target = target_mb * 1024 * 1024
    # Random batches up to SEED_MB, then copies of existing rows with fresh ids and times
    # (generating every row with random() costs about 1 s per MB on a busy 2-core machine).
    # A copied row lies far beyond gzip's 32 KB window from its original, so compression
    # gains nothing from the repetition.
    batches = 0
    while db_size(db) < min(target, SEED_MB * 1024 * 1024):
        db_exec("psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", db, "-c", BATCH)
        batches += 1
    while db_size(db) < target:
        db_exec("psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", db, "-c", GROW)
        batches += 1
    if batches:
        psql(db, "VACUUM (ANALYZE, PARALLEL 0)")
        log(f"{db}: grown to {db_size(db) / 1048576:.0f} MB in {time.monotonic() - start:.0f} s")
    rows = psql(db, "SELECT sum(n_live_tup) FROM pg_stat_user_tables")
    return {"database": db, "size_bytes": db_size(db), "rows": int(rows)}


def playbook(name: str, *extra: str) -> tuple[float, subprocess.CompletedProcess]:
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0", "PROFILE_TASKS_TASK_OUTPUT_LIMIT": "all"}
    cmd = [str(BIN / "ansible-playbook"), "-i", "inventories/lab", f"playbooks/{name}", *extra]
    seconds, result = timed(subprocess.run, cmd, cwd=REPO_ROOT, capture_output=True, text=True, env=env, timeout=3600)
    if result.returncode != 0:
        raise SystemExit(f"{name} failed:\n{result.stdout[-4000:]}\n{result.stderr[-2000:]}")
    return seconds, result


PROFILE_LINE = re.compile(r"^(?P<task>.+?) -{2,} (?P<seconds>[0-9.]+)s$")


def task_profile(stdout: str, top: int = 12) -> dict:
    """The slowest tasks from profile_tasks' TASKS RECAP (ansible.cfg enables it), and their count."""
    recap = stdout.split("TASKS RECAP", 1)[-1]
    tasks = [(m["task"].strip(), float(m["seconds"])) for m in map(PROFILE_LINE.match, recap.splitlines()) if m]
    return {"tasks_listed": len(tasks), "slowest": dict(tasks[:top]), "sum_s": round(sum(t for _, t in tasks), 2)}


def adhoc_verify(path: str, manifest: str, level: str) -> tuple[float, dict]:
    env = {**os.environ, "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1", "ANSIBLE_STDOUT_CALLBACK": "json"}
    args = json.dumps({"path": path, "manifest": manifest, "level": level, "login_unix_socket": "/var/run/postgresql"})
    cmd = [str(BIN / "ansible"), "-i", "inventories/lab", "db1", "-b", "--become-user", "postgres"]
    cmd += ["-m", "opsbook.webstack.pg_dump_verify", "-a", args]
    seconds, result = timed(subprocess.run, cmd, cwd=REPO_ROOT, capture_output=True, text=True, env=env, timeout=3600)
    # ansible.cfg enables profile_tasks, which prints lines before and after the JSON document.
    start = result.stdout.find("\n{")
    if start < 0:
        raise SystemExit(f"pg_dump_verify {level}: no JSON from ansible:\n{result.stdout[-2000:]}\n{result.stderr}")
    data, _ = json.JSONDecoder().raw_decode(result.stdout, start + 1)
    out = data["plays"][0]["tasks"][0]["hosts"]["db1"]
    if out.get("failed"):
        raise SystemExit(f"pg_dump_verify level {level} failed: {out.get('msg')}")
    return seconds, out


def fit(points: list[tuple[float, float]]) -> dict:
    """Least squares ours = overhead + ratio * raw over (raw, ours) points."""
    n = len(points)
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    sxx = sum((p[0] - mx) ** 2 for p in points)
    ratio = sum((p[0] - mx) * (p[1] - my) for p in points) / sxx if sxx else float("nan")
    return {"ratio": round(ratio, 3), "overhead_s": round(my - ratio * mx, 2), "points": n}


def median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return round(ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2, 3)


def bench_backup(db: str, bid: str, repeat: int) -> dict:
    """raw pg_dump and backup.yml, alternately, repeat times each: the medians (and every sample)."""
    raw_path = f"{RAW_DIR}/{db}.dump"
    raw_runs, our_runs = [], []
    for i in range(repeat):
        db_exec("rm", "-f", raw_path)
        raw_runs.append(timed(db_exec, "pg_dump", "-Fc", "-f", raw_path, db)[0])
        run_id = f"{bid}r{i}"
        ours_s, ours = playbook(
            "backup.yml", "-e", f"backup_id={run_id}", "-e", f"backup_database={db}",
            "-e", f"backup_dir={BENCH_DIR}/{db}",
            "-e", json.dumps({"backup_retention": {"keep_last": 1}, "backup_media": False, "backup_config": False}),
        )  # fmt: skip
        our_runs.append(ours_s)
    bid = run_id  # the last backup: the one retention kept
    raw_bytes = int(db_exec("stat", "-c", "%s", raw_path).stdout)
    raw_s, ours_s = median(raw_runs), median(our_runs)
    manifest = json.loads(db_exec("cat", f"{BENCH_DIR}/{db}/journal-{bid}.json", user="root").stdout)
    return {
        "raw_pg_dump_s": raw_s,
        "raw_runs_s": raw_runs,
        "raw_bytes": raw_bytes,
        "ours_s": ours_s,
        "ours_runs_s": our_runs,
        "ours_bytes": int(manifest["size"]),
        "ours_dump_module_s": manifest.get("duration"),
        # Verified while written (custom format, content): how long it went on after pg_dump exited.
        "ours_verify_s": manifest.get("verification", {}).get("duration")
        or {"after_dump": manifest.get("verification", {}).get("seconds_after_dump")},
        "ours_verified_during_dump": bool(manifest.get("verification", {}).get("during_dump")),
        "ratio": round(ours_s / raw_s, 3),
        "ours_profile": task_profile(ours.stdout),
        "raw_path": raw_path,
        "manifest": f"{BENCH_DIR}/{db}/journal-{bid}.json",
        "path": f"{BENCH_DIR}/{db}/{manifest['file']}",
        "id": bid,
    }


def bench_restore(db: str, backup: dict, repeat: int) -> dict:
    """raw createdb + pg_restore -j2 and the restore drill, alternately, repeat times each: the medians."""
    scratch = f"{db}_rawrestore"
    db_exec("dropdb", "--if-exists", scratch)

    def raw() -> None:
        db_exec("createdb", scratch)
        db_exec("pg_restore", "-j2", "-d", scratch, backup["raw_path"])

    raw_runs, our_runs = [], []
    for _ in range(repeat):
        raw_runs.append(timed(raw)[0])
        db_exec("dropdb", scratch)
        ours_s, ours = playbook(
            "restore.yml", "-e", "restore_mode=drill", "-e", f"restore_backup={backup['id']}",
            "-e", f"restore_backup_dir={BENCH_DIR}/{db}", "-e", f"restore_database={db}",
        )  # fmt: skip
        our_runs.append(ours_s)
    raw_s, ours_s = median(raw_runs), median(our_runs)
    return {
        "raw_pg_restore_j2_s": raw_s,
        "raw_runs_s": raw_runs,
        "ours_drill_s": ours_s,
        "ours_runs_s": our_runs,
        "ratio": round(ours_s / raw_s, 3),
        "ours_profile": task_profile(ours.stdout),
    }


def bench_levels(backup: dict, levels: list[str]) -> dict:
    size_mb = backup["ours_bytes"] / 1048576
    out: dict = {"file_mb": round(size_mb, 1), "levels": {}}
    sha_s, _ = timed(db_exec, "sha256sum", backup["path"])
    pgr_s, _ = timed(db_exec, "pg_restore", "-f", "/dev/null", backup["path"])
    out["sha256sum"] = {"s": sha_s, "mb_s": round(size_mb / sha_s, 1)}
    out["pg_restore_devnull"] = {"s": pgr_s, "mb_s": round(size_mb / pgr_s, 1)}
    for level in levels:
        wall, result = adhoc_verify(backup["path"], backup["manifest"], level)
        durations = result.get("durations", {})
        own = durations.get(level)
        cumulative = round(sum(durations.values()), 3)
        out["levels"][level] = {
            "own_s": own,
            "cumulative_s": cumulative,
            "cumulative_mb_s": round(size_mb / cumulative, 1) if cumulative else None,
            "durations": durations,
            "ansible_wall_s": wall,
        }
    return out


def save(result: dict, started: datetime.datetime) -> Path:
    """Written after every measurement, so an interrupted run keeps what it measured."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"backup-{started:%Y-%m-%dT%H%M}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes-mb", default="8,400,1100", help="database sizes to fit over (MB, pg_database_size)")
    parser.add_argument("--levels", default=",".join(LEVELS))
    parser.add_argument("--skip-restore", action="store_true", help="measure backups and verification only")
    parser.add_argument("--drop", action="store_true", help="drop the bench databases and files at the end")
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs of raw and ours (alternately) per size; the medians are fitted"
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes_mb.split(",")]
    started = datetime.datetime.now(datetime.UTC)
    log(f"target: {DB_CONTAINER} (OPSBOOK_LAB={LAB})")
    db_exec("mkdir", "-p", RAW_DIR, BENCH_DIR, user="root")
    db_exec("chown", "postgres:postgres", RAW_DIR, BENCH_DIR, user="root")
    # Docker gives a container 64 MB of /dev/shm: parallel query, parallel VACUUM and parallel
    # index builds (pg_restore) fail there with "could not resize shared memory segment".
    # Turned off for the run, for raw and ours alike, and reset at the end.
    for setting in NO_PARALLEL:
        psql("postgres", f"ALTER SYSTEM SET {setting} = 0")
    psql("postgres", "SELECT pg_reload_conf()")
    result: dict = {
        "started": started.isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "loadavg_start": os.getloadavg(),
            "server": psql("postgres", "SHOW server_version"),
            "target": DB_CONTAINER,
        },
        "goals": GOALS,
        "repeat": args.repeat,
        "sizes": [],
    }
    for mb in sizes:
        db = f"bench_{mb}"
        info = ensure_database(db, mb)
        log(f"{db}: {info['size_bytes'] / 1048576:.0f} MB, {info['rows']} rows")
        bid = f"b{datetime.datetime.now(datetime.UTC):%H%M%S}"
        backup = bench_backup(db, bid, args.repeat)
        log(f"{db}: pg_dump -Fc {backup['raw_pg_dump_s']} s, backup.yml {backup['ours_s']} s ({backup['ratio']}x)")
        entry = {**info, "backup": backup}
        result["sizes"].append(entry)
        save(result, started)
        result["sizes"].pop()
        if not args.skip_restore:
            entry["restore"] = bench_restore(db, backup, args.repeat)
            r = entry["restore"]
            raw_s, ours_s = r["raw_pg_restore_j2_s"], r["ours_drill_s"]
            log(f"{db}: pg_restore -j2 {raw_s} s, restore.yml drill {ours_s} s ({r['ratio']}x)")
        result["sizes"].append(entry)
        save(result, started)
    result["fit"] = {"backup": fit([(s["backup"]["raw_pg_dump_s"], s["backup"]["ours_s"]) for s in result["sizes"]])}
    if not args.skip_restore:
        result["fit"]["restore"] = fit(
            [(s["restore"]["raw_pg_restore_j2_s"], s["restore"]["ours_drill_s"]) for s in result["sizes"]]
        )
    largest = max(result["sizes"], key=lambda s: s["size_bytes"])
    log(f"verification levels on {largest['backup']['path']}")
    result["verification"] = bench_levels(largest["backup"], [lv for lv in args.levels.split(",") if lv])
    result["machine"]["loadavg_end"] = os.getloadavg()
    result["finished"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    for what, f in result["fit"].items():
        goal = GOALS[what]
        f["meets_goal"] = f["ratio"] <= goal["ratio"] and f["overhead_s"] <= goal["overhead"]
        largest_line = largest[what]
        raw_key = "raw_pg_dump_s" if what == "backup" else "raw_pg_restore_j2_s"
        ours_key = "ours_s" if what == "backup" else "ours_drill_s"
        budget = goal["ratio"] * largest_line[raw_key] + goal["overhead"]
        f["largest"] = {"raw_s": largest_line[raw_key], "ours_s": largest_line[ours_key], "budget_s": round(budget, 2)}
    for setting in NO_PARALLEL:
        psql("postgres", f"ALTER SYSTEM RESET {setting}")
    psql("postgres", "SELECT pg_reload_conf()")
    result["machine"]["settings"] = {s: 0 for s in NO_PARALLEL}
    if args.drop:
        for s in result["sizes"]:
            db_exec("dropdb", "--if-exists", s["database"])
        db_exec("rm", "-rf", RAW_DIR, BENCH_DIR, user="root")
    out = save(result, started)
    print(json.dumps(result["fit"], indent=2))
    print(json.dumps(result["verification"], indent=2))
    print(f"written: {out.relative_to(REPO_ROOT)}")


if __name__ == "__main__":
    main()
