"""operations (maintenance), checked after converge (provision, deploy v1, a backup, a maintenance and a health
report), idempotence and test_backup_restore.py (whose real restore leaves a pre-restore database behind).

The tests run in file order against mo-lb1 (nginx), mo-app1 (app, workers, beat) and mo-db1
(PostgreSQL, Redis). Each playbook run writes its report to its own directory, read back here.
"""

import contextlib
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

PROJECT_DIR = Path(__file__).resolve().parents[3]
sys.path[:0] = [str(PROJECT_DIR / "tests" / "molecule"), str(PROJECT_DIR / "tests" / "lab")]

import molecule_scenario  # noqa: E402
from molecule_scenario import host  # noqa: E402

LB = host("mo-lb1")
APP = host("mo-app1")
DB = host("mo-db1")


def playbook(name: str, report_dir: Path, *extra: str) -> tuple[subprocess.CompletedProcess, dict[str, int]]:
    """The playbook with its reports written to report_dir."""
    return molecule_scenario.playbook(name, "-e", f"maintenance_report_dir={report_dir}", *extra, timeout=900)


def report(report_dir: Path, kind: str = "maintenance") -> dict:
    [path] = sorted(report_dir.glob(f"{kind}-*.json"))
    data = json.loads(path.read_text())
    html = Path(data["html"]).read_text()
    assert "<table>" in html and data["kind"] in html
    return data


def run_ok(name: str, report_dir: Path, *extra: str) -> tuple[dict, dict[str, int], str]:
    result, recap = playbook(name, report_dir, *extra)
    assert result.returncode == 0, result.stdout[-6000:]
    return report(report_dir, "health" if name == "health.yml" else "maintenance"), recap, result.stdout


def findings(data: dict, check: str, subject: str | None = None) -> list[dict]:
    return [f for f in data["findings"] if f["check"] == check and (subject is None or f["subject"] == subject)]


def one(data: dict, check: str, subject: str) -> dict:
    [found] = findings(data, check, subject)
    return found


def psql(sql: str) -> str:
    result = DB.run("runuser -u postgres -- psql -d journal -v ON_ERROR_STOP=1 -tAc %s", sql)
    assert result.rc == 0, result.stderr
    return result.stdout.strip()


def test_the_converge_reports_are_written_with_nothing_critical_but_the_certificate(tmp_path):
    data, recap, out = run_ok("maintenance.yml", tmp_path)
    # set_stats carries the summary and both paths (CI and AWX read it).
    stats = out[out.index("CUSTOM STATS") :]
    assert '"worst": "warning"' in stats and data["json"] in stats and data["html"] in stats, stats[:2000]
    assert set(data["hosts"]) == {"mo-lb1", "mo-app1", "mo-db1"}
    assert recap == {h: 0 for h in recap}, recap  # a report run changes nothing
    assert {f["host"] for f in findings(data, "disk")} == {"mo-lb1", "mo-app1", "mo-db1"}
    assert len(findings(data, "memory")) == 3
    assert one(data, "connections", "client connections")["level"] in ("ok", "warning")
    assert data["database"]["database"] == "journal"
    assert "public.articles_article" in [t["name"] for t in data["database"]["tables"]]
    # The seeds' defaults: 30 days warning, 7 critical; the certificate has 10 days left.
    cert = one(data, "certificate", "/etc/opsbook/tls/journal-10d.pem")
    assert 9 <= cert["value"] <= 10 and cert["level"] == "warning", cert
    assert data["thresholds"]["certificate_days"] == {"warning": 30, "critical": 7}


def test_table_churn_shows_as_bloat_and_vacuum_reduces_it(tmp_path):
    # A purge job: 90 % of the rows deleted, at the end of the table, so VACUUM can both mark
    # the space free and give the emptied pages back (a plain VACUUM truncates only the tail).
    psql(
        "DROP TABLE IF EXISTS churn; "
        "CREATE TABLE churn (id int PRIMARY KEY, body text) WITH (autovacuum_enabled = false); "
        "INSERT INTO churn SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, 200000) g; "
        "DELETE FROM churn WHERE id > 20000; ANALYZE churn"
    )
    time.sleep(1)  # the statistics collector publishes counters at most once a second
    before, _, _ = run_ok("maintenance.yml", tmp_path / "before")
    dead = one(before, "dead tuples", "public.churn")
    bloat = one(before, "table bloat", "public.churn")
    assert dead["value"] >= 50 and dead["level"] == "critical", dead
    assert bloat["value"] >= 60 and bloat["level"] == "critical", bloat

    # Check mode measures but does not vacuum.
    checked, recap, _ = run_ok(
        "maintenance.yml",
        tmp_path / "check",
        "--check",
        "-e",
        '{"maintenance_vacuum": true, "maintenance_vacuum_tables": ["public.churn"]}',
    )
    assert recap["mo-db1"] == 0
    assert one(checked, "dead tuples", "public.churn")["value"] >= 50

    after, recap, _ = run_ok(
        "maintenance.yml",
        tmp_path / "after",
        "-e",
        '{"maintenance_vacuum": true, "maintenance_vacuum_tables": ["public.churn"]}',
    )
    assert recap["mo-db1"] >= 1
    assert after["database"]["actions"]["vacuum"] == ["public.churn"]
    [table] = [t for t in after["database"]["tables"] if t["name"] == "public.churn"]
    assert one(after, "dead tuples", "public.churn")["value"] < 5
    assert table["bloat_percent"] < bloat["value"] / 2, table
    # VACUUM does not shrink an index: its bloat stays until a REINDEX (next test).
    assert one(after, "index bloat", "public.churn_pkey")["level"] == "critical"
    print(
        f"churn: dead {dead['value']} % -> {table['dead_percent']} %, "
        f"bloat {bloat['value']} % -> {table['bloat_percent']} %"
    )


def test_reindex_concurrently_and_a_bad_name_is_refused_before_anything_runs(tmp_path):
    result, _ = playbook(
        "maintenance.yml", tmp_path / "bad", "-e", '{"maintenance_reindex": ["public.churn", "public.nope"]}'
    )
    assert result.returncode != 0
    assert "Not in database journal: public.nope" in result.stdout and "maintenance_reindex" in result.stdout
    assert "REINDEX CONCURRENTLY" not in re.sub(r"TASK \[.*", "", result.stdout.split("Every named relation")[-1])
    oid = psql("SELECT 'churn_pkey'::regclass::oid")
    data, recap, _ = run_ok("maintenance.yml", tmp_path / "ok", "-e", '{"maintenance_reindex": ["public.churn_pkey"]}')
    assert recap["mo-db1"] >= 1 and data["database"]["actions"]["reindex"] == ["public.churn_pkey"]
    assert psql("SELECT 'churn_pkey'::regclass::oid") != oid  # a new index was built and swapped in
    [index] = [i for i in data["database"]["indexes"] if i["name"] == "public.churn_pkey"]
    assert index["bloat_percent"] is None or index["bloat_percent"] < 20, index


def test_dropping_pre_restore_databases_needs_the_confirmation(tmp_path):
    psql("CREATE DATABASE journal_pre_restore_20200101000000")
    try:
        result, _ = playbook("maintenance.yml", tmp_path / "refused", "-e", "maintenance_drop_pre_restore_days=30")
        assert result.returncode != 0 and "maintenance_drop_pre_restore_confirm" in result.stdout
        assert "journal_pre_restore_20200101000000" in psql("SELECT datname FROM pg_database")
        data, _, _ = run_ok(
            "maintenance.yml", tmp_path / "dropped",
            "-e", "maintenance_drop_pre_restore_days=30", "-e", "maintenance_drop_pre_restore_confirm=true",
        )  # fmt: skip
        assert data["database"]["actions"]["dropped"] == ["journal_pre_restore_20200101000000"]
        assert "journal_pre_restore_20200101000000" not in psql("SELECT datname FROM pg_database")
    finally:
        psql("DROP DATABASE IF EXISTS journal_pre_restore_20200101000000")


def test_old_logs_are_listed_in_check_mode_and_deleted_when_asked(tmp_path):
    logs = "/srv/journal/shared/logs"
    APP.run(f"install -d -o journal -g journal {logs}")
    APP.run(f"touch -d '30 days ago' {logs}/old.log {logs}/old.log.1.gz && touch {logs}/new.log")
    try:
        days = ("-e", "maintenance_log_cleanup_days=14")
        data, recap, _ = run_ok("maintenance.yml", tmp_path / "check", "--check", *days)
        assert sorted(data["host_actions"]["mo-app1"]["logs_deleted"]) == [f"{logs}/old.log", f"{logs}/old.log.1.gz"]
        assert APP.file(f"{logs}/old.log").exists and recap["mo-app1"] == 1
        data, recap, _ = run_ok("maintenance.yml", tmp_path / "real", *days)
        assert recap["mo-app1"] == 1
        assert not APP.file(f"{logs}/old.log").exists and not APP.file(f"{logs}/old.log.1.gz").exists
        assert APP.file(f"{logs}/new.log").exists
        _, recap, _ = run_ok("maintenance.yml", tmp_path / "again", *days)
        assert recap["mo-app1"] == 0
    finally:
        APP.run(f"rm -f {logs}/old.log {logs}/old.log.1.gz {logs}/new.log")


@pytest.fixture
def long_query():
    """A 300-s query by the app's own role, from mo-app1, with the app's own credentials."""
    started = APP.run(
        "systemd-run --unit=mo-long-query --collect --uid=journal --gid=journal "
        "--property=EnvironmentFile=/srv/journal/shared/env --property=WorkingDirectory=/srv/journal/current "
        "/srv/journal/current/venv/bin/python manage.py shell -c "
        "'from django.db import connection; connection.cursor().execute(\"SELECT pg_sleep(300), \\x27hunter2\\x27\")'"
    )
    assert started.rc == 0, started.stderr
    yield
    APP.run("systemctl stop mo-long-query.service")


def running_sleeps() -> int:
    return int(psql("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(300)%'"))


def test_a_long_query_is_reported_then_terminated_when_asked(tmp_path, long_query):
    deadline = time.monotonic() + 30
    while running_sleeps() == 0 and time.monotonic() < deadline:
        time.sleep(1)
    assert running_sleeps() == 1
    # Past the warning threshold, lowered from its 10 s default so the test waits 4 s, not 11.
    time.sleep(4)
    data, _, _ = run_ok(
        "maintenance.yml", tmp_path / "report", "-e", '{"maintenance_thresholds": {"query_seconds": {"warning": 3}}}'
    )
    [query] = [f for f in findings(data, "long query") if "pg_sleep" in f["detail"]]
    assert query["level"] in ("warning", "critical") and query["value"] >= 3, query
    assert "hunter2" not in json.dumps(data) and "'…'" in query["detail"]  # literals masked
    assert running_sleeps() == 1  # reported, not terminated

    data, recap, _ = run_ok(
        "maintenance.yml", tmp_path / "terminate",
        "-e", "maintenance_terminate_queries=true", "-e", "maintenance_terminate_after_seconds=5",
    )  # fmt: skip
    assert recap["mo-db1"] >= 1
    assert [q["user"] for q in data["database"]["actions"]["terminated"]] == ["journal"]
    assert running_sleeps() == 0


def test_thresholds_are_overridden_and_fail_on_critical_fails_after_writing_the_report(tmp_path):
    # Two thresholds overridden in one run: disk warning at 1 %, certificate critical under 14 days.
    result, _ = playbook(
        "maintenance.yml", tmp_path / "cert",
        "-e", '{"maintenance_thresholds": {"disk_percent": {"warning": 1}, "certificate_days": {"critical": 14}}}',
        "-e", "maintenance_fail_on_critical=true",
    )  # fmt: skip
    assert result.returncode != 0
    assert "critical finding(s)" in result.stdout and "journal-10d.pem" in result.stdout
    data = report(tmp_path / "cert")
    assert {f["level"] for f in findings(data, "disk")} == {"warning"}, findings(data, "disk")
    assert one(data, "certificate", "/etc/opsbook/tls/journal-10d.pem")["level"] == "critical"
    assert data["worst"] == "critical"

    result, _ = playbook(
        "maintenance.yml", tmp_path / "bad", "-e", '{"maintenance_thresholds": {"disk_percent": {"warning": 95}}}'
    )
    assert (
        result.returncode != 0 and "threshold disk_percent: warning (95) must be at most critical (90)" in result.stdout
    )


def test_health_checks_everything_and_finds_a_stopped_worker(tmp_path):
    data, recap, _ = run_ok("health.yml", tmp_path / "up")
    assert recap == {h: 0 for h in recap}, recap
    services = {(f["host"], f["subject"]): f["level"] for f in findings(data, "service")}
    assert services[("mo-app1", "journal-worker.service")] == "ok"
    assert services[("mo-db1", "redis-server.service")] == "ok"
    assert services[("mo-lb1", "nginx.service")] == "ok"
    assert all(level == "ok" for level in services.values()), services
    assert one(data, "app health", "http://127.0.0.1:8000/health/")["level"] == "ok"
    assert findings(data, "health through the load balancer")[0]["level"] == "ok"
    assert one(data, "database", "journal")["level"] == "ok"
    assert [f["subject"] for f in findings(data, "queue depth")] == ["celery"]
    [errors] = findings(data, "error lines")
    assert errors["host"] == "mo-app1"
    # Earlier tests leave real error lines (a terminated query): any level but unknown.
    assert isinstance(errors["value"], int | float) and errors["level"] != "unknown", errors

    # A stopped worker is critical; a journal that cannot be read (journalctl not executable)
    # is "unknown", never "0 error lines".
    APP.run("systemctl stop journal-worker.service")
    APP.run("chmod 0 /usr/bin/journalctl")
    try:
        result, _ = playbook("health.yml", tmp_path / "down", "-e", "maintenance_fail_on_critical=true")
        assert result.returncode != 0
        data = report(tmp_path / "down", "health")
        assert one(data, "service", "journal-worker.service")["level"] == "critical"
        [errors] = findings(data, "error lines")
        assert errors["level"] == "unknown" and errors["value"] is None, errors
        assert "could not be read" in errors["detail"] and "journalctl exited 126" in errors["detail"], errors
    finally:
        APP.run("chmod 0755 /usr/bin/journalctl")
        APP.run("systemctl start journal-worker.service")


def redis(command: str) -> str:
    """redis-cli on mo-db1 as the app's client; the password read there from Redis's own config (not in argv)."""
    result = DB.run(
        "REDISCLI_AUTH=$(sed -n 's/^requirepass //p' /etc/redis/opsbook.conf | tr -d '\"') "
        f"redis-cli --no-auth-warning {command}"
    )
    assert result.rc == 0, result.stderr
    return result.stdout


def redis_stats() -> dict[str, int]:
    info = dict(line.split(":", 1) for line in redis("INFO stats").splitlines() if ":" in line)
    return {key: int(info[key]) for key in ("keyspace_hits", "keyspace_misses")}


@contextlib.contextmanager
def waiting_lock():
    """A transaction holding an EXCLUSIVE lock on the articles table (reads pass, writes wait) and an UPDATE waiting.

    EXCLUSIVE rather than ACCESS EXCLUSIVE: the report's own reads (table sizes take ACCESS SHARE) must not wait.
    """
    end_lock_sessions()
    holder = DB.run(
        "systemd-run --unit=mo-lock-holder --collect runuser -u postgres -- psql -d journal -c "
        '"BEGIN; LOCK TABLE articles_article IN EXCLUSIVE MODE; SELECT pg_sleep(900);"'
    )
    assert holder.rc == 0, holder.stderr
    try:
        deadline = time.monotonic() + 60
        while not holder_pid() and time.monotonic() < deadline:
            time.sleep(1)
        waiter = DB.run(
            "systemd-run --unit=mo-lock-waiter --collect runuser -u postgres -- psql -d journal -c "
            "\"UPDATE articles_article SET title = title WHERE title = 'hunter3'\""
        )
        assert waiter.rc == 0, waiter.stderr
        deadline = time.monotonic() + 60
        while psql("SELECT count(*) FROM pg_locks WHERE NOT granted") == "0" and time.monotonic() < deadline:
            time.sleep(1)
        yield holder_pid()
    finally:
        DB.run("systemctl stop mo-lock-waiter.service mo-lock-holder.service")
        end_lock_sessions()  # a backend in pg_sleep does not notice its client is gone


def end_lock_sessions() -> None:
    psql(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND "
        "(query LIKE 'BEGIN; LOCK TABLE articles_article%' OR query LIKE 'UPDATE articles_article SET title = title%')"
    )


def holder_pid() -> str:
    return psql("SELECT pid FROM pg_stat_activity WHERE query LIKE 'BEGIN; LOCK TABLE articles_article%'")


def test_query_and_cache_insight_top_statements_a_waiting_lock_and_redis(tmp_path):
    # Real statements: one with a literal run 3 times (pg_stat_statements stores it as $1).
    for _ in range(3):
        psql("SELECT count(*) FROM articles_article WHERE title = 'top-secret-value'")
    # Real cache traffic: 5 hits and 3 misses.
    before = redis_stats()
    redis("SET mm:insight 1")
    for _ in range(5):
        assert redis("GET mm:insight").strip() == "1"
    for _ in range(3):
        assert redis("GET mm:insight:missing").strip() == ""
    with waiting_lock() as holder:  # after the statements: the UPDATE waits, reads do not
        assert holder, "the lock holder is not running"
        # All statements listed: three cheap counts are not in the top 10 of a freshly deployed app.
        data, recap, out = run_ok("maintenance.yml", tmp_path, "-e", "maintenance_report_statements=5000")
    assert recap == {h: 0 for h in recap}, recap
    db = data["database"]
    assert db["statements_status"].startswith("enabled (pg_stat_statements"), db["statements_status"]
    [ours] = [s for s in db["statements"] if "articles_article WHERE title =" in s["query"]]
    assert "$1" in ours["query"] and ours["calls"] >= 3, ours
    assert {"total_ms", "mean_ms", "rows", "percent"} <= set(ours)
    assert findings(data, "statement mean time"), "the listed statements are judged by statement_mean_ms"

    [wait] = [w for w in db["lock_waits"] if "articles_article" in w["object"]]
    assert f"pid {holder} postgres" in wait["blockers"] and int(holder) in wait["blocked_by"], wait
    assert wait["mode"] == "RowExclusiveLock" and wait["seconds"] >= 0, wait
    [finding] = [f for f in findings(data, "lock wait") if "articles_article" in f["subject"]]
    assert finding["metric"] == "lock_wait_seconds" and finding["detail"].startswith("blocked by pid"), finding

    cache = data["cache"]
    assert cache["host"] == "mo-db1" and cache["version"]
    assert cache["keyspace_hits"] >= before["keyspace_hits"] + 5, (before, cache)
    assert cache["keyspace_misses"] >= before["keyspace_misses"] + 3, (before, cache)
    total = cache["keyspace_hits"] + cache["keyspace_misses"]
    assert cache["hit_percent"] == round(100.0 * cache["keyspace_hits"] / total, 1)
    assert cache["used_memory"] > 0 and cache["latency"]["samples"] > 0, cache
    checks = {f["check"]: f for f in data["findings"] if f["host"] == "mo-db1"}
    assert {"redis memory", "redis fragmentation", "cache hit rate", "redis latency"} <= set(checks)
    assert checks["redis latency"]["metric"] == "redis_latency_ms" and checks["redis latency"]["value"] is not None

    # Nothing secret in the reports or the output: literals masked or normalised, no Redis password.
    html = Path(data["html"]).read_text()
    for text in (json.dumps(data), html, out):
        assert "top-secret-value" not in text and "hunter3" not in text
    password = DB.run("sed -n 's/^requirepass //p' /etc/redis/opsbook.conf | tr -d '\"'").stdout.strip()
    assert password and password not in json.dumps(data) + html + out
    assert "Lock waits" in html and "Top statements by total time" in html and "Redis on mo-db1" in html
