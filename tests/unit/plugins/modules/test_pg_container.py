"""pg_backup_dump and pg_dump_verify with the container option, against a real PostgreSQL 15 running in a
container on this machine's Docker engine (images/postgres, Debian bookworm's postgresql-15), as the
database runs as a service of a compose project (app_db_compose_service, docs/compose.md).

The container's tools do the work through docker exec: the snapshot's counts, the dump streamed to the
host's file, pg_restore reading it back, the scratch restore. The host's own PostgreSQL tools are not used.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
from ansible_collections.opsbook.webstack.plugins.module_utils.pg_archive import file_sha256, open_archive
from ansible_collections.opsbook.webstack.plugins.module_utils.pg_container import PsqlSession
from module_runner import run_module

ROOT = Path(__file__).resolve().parents[4]
IMAGE = os.environ.get("OPSBOOK_POSTGRES_IMAGE", "opsbook/postgres:bookworm")
BASE = os.environ.get("OPSBOOK_BASE_IMAGE", "opsbook/debian:bookworm")
DB = "journal"
USER = "journal"
# Everything sh, psql's variables, libpq's passfile and a command line could read differently.
PASSWORD = "q'uo\"te $HOME `id` \\back:slash\nsecond line; DROP TABLE x; --"

pytestmark = pytest.mark.skipif(shutil.which("docker") is None, reason="needs a Docker engine")


def docker(*args: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, timeout=600, **kw)


def psql(container: str, sql: str, db: str = DB) -> str:
    out = docker("exec", "--user", "postgres", container, "psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                 "-d", db, "-c", sql)  # fmt: skip
    return out.stdout.strip()


@pytest.fixture(scope="module")
def pg():
    """A PostgreSQL container (cdb-pgtest-*), its app role with a hostile password, two tables with rows."""
    if docker("image", "inspect", IMAGE, check=False).returncode != 0:
        docker("build", "-q", "--build-arg", f"BASE_IMAGE={BASE}", "-t", IMAGE, str(ROOT / "images" / "postgres"))
    name = f"cdb-pgtest-{uuid.uuid4().hex[:8]}"
    # The password reaches the container through the docker CLI's environment (-e NAME), not argv.
    env = {**os.environ, "POSTGRES_PASSWORD": PASSWORD}
    docker("run", "-d", "--name", name, "-e", f"POSTGRES_USER={USER}", "-e", "POSTGRES_PASSWORD",
           "-e", f"POSTGRES_DB={DB}", IMAGE, env=env)  # fmt: skip
    try:
        for _ in range(150):
            state = docker("inspect", "-f", "{{.State.Health.Status}}", name, check=False).stdout.strip()
            if state == "healthy":
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"{name} did not become healthy: {docker('logs', name, check=False).stderr[-2000:]}")
        psql(
            name,
            "CREATE TABLE public.article (id serial PRIMARY KEY, body text, meta jsonb);"
            "CREATE SCHEMA audit; CREATE TABLE audit.event (id bigserial PRIMARY KEY, note text);"
            "INSERT INTO public.article (body, meta) SELECT md5(g::text), jsonb_build_object('n', g)"
            "  FROM generate_series(1, 3000) g;"
            "INSERT INTO audit.event (note) SELECT 'e' || g FROM generate_series(1, 250) g;"
            f"ALTER TABLE public.article OWNER TO {USER}; ALTER SCHEMA audit OWNER TO {USER};"
            f"ALTER TABLE audit.event OWNER TO {USER}; ALTER ROLE {USER} CREATEDB;",
        )
        yield name
    finally:
        docker("rm", "-f", "-v", name, check=False)


EXPECTED = {"public.article": 3000, "audit.event": 250}


def dump_args(container: str, dest: Path, **extra) -> dict:
    return {"database": DB, "dest": str(dest), "container": container, "login_host": "/var/run/postgresql", **extra}


@pytest.mark.parametrize("verify", ["none", "content"])
def test_dump_streams_out_of_the_container_with_counts_from_its_snapshot(pg, tmp_path, verify):
    dest = tmp_path / "b.dump"
    result = run_module("pg_backup_dump", dump_args(pg, dest, verify=verify, migrations="django"))
    assert not result.failed, result.msg
    assert result["tables"] == EXPECTED
    assert result["migrations"] == []
    assert result["sha256"] == file_sha256(str(dest))
    assert result["size"] == dest.stat().st_size
    assert oct(dest.stat().st_mode & 0o777) == "0o600"
    assert result["server_version"].startswith("15") and result["pg_dump_version"].startswith("15")
    assert open_archive(str(dest)).format == "custom"
    if verify == "content":
        assert result["verification"]["during_dump"] and result["verification"]["rows"] == 3250
    # What the backup role does next: pg_dump_verify against the counts, through the container.
    verified = run_module(
        "pg_dump_verify",
        {"path": str(dest), "level": "read", "container": pg, "login_unix_socket": "/var/run/postgresql"},
    )
    assert not verified.failed, verified.msg
    assert verified["tables"] == EXPECTED


def test_rows_written_during_the_dump_are_in_neither_the_counts_nor_the_dump(pg, tmp_path):
    """The counts (a psql session in the container) and pg_dump (another exec) share one snapshot."""
    stop = threading.Event()
    writer = PsqlSession("docker", pg, DB, {})
    added = []

    def write():
        while not stop.is_set():
            writer.execute("INSERT INTO audit.event (note) SELECT 'late' FROM generate_series(1, 50)")
            added.append(50)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    try:
        result = run_module("pg_backup_dump", dump_args(pg, tmp_path / "c.dump", verify="content"))
    finally:
        stop.set()
        thread.join(timeout=10)
        writer.close()
    try:
        assert not result.failed, result.msg
        assert added, "the writer added no row while the dump ran"
        verified = run_module("pg_dump_verify", {"path": str(tmp_path / "c.dump"), "level": "read", "container": pg})
        assert not verified.failed, verified.msg
        assert verified["tables"]["audit.event"] == result["tables"]["audit.event"]
        assert int(psql(pg, "SELECT count(*) FROM audit.event")) > result["tables"]["audit.event"]
    finally:
        psql(pg, "DELETE FROM audit.event WHERE note = 'late'")


def _argv_watcher(secret: str):
    """Every process's argv on this machine (the containers' processes too), sampled until stopped."""
    seen: list = []
    stop = threading.Event()
    needle = secret.encode()

    def watch():
        while not stop.is_set():
            for pid in os.listdir("/proc"):
                if pid.isdigit():
                    try:
                        with open(f"/proc/{pid}/cmdline", "rb") as fh:
                            argv = fh.read()
                    except OSError:
                        continue
                    if needle in argv:
                        seen.append(argv)
            time.sleep(0.005)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return seen, stop, thread


def test_a_hostile_password_works_and_is_never_in_an_argv_or_the_result(pg, tmp_path):
    """The app's role over TCP (scram) with a password full of quotes, $, backticks, a newline."""
    login = {"login_host": "127.0.0.1", "login_user": USER, "login_password": PASSWORD, "container": pg}
    seen, stop, thread = _argv_watcher(PASSWORD.split("\n")[0])
    try:
        dumped = run_module(
            "pg_backup_dump", {"database": DB, "dest": str(tmp_path / "p.dump"), "verify": "content", **login}
        )
        restored = run_module(
            "pg_dump_verify",
            {
                "path": str(tmp_path / "p.dump"),
                "level": "restore",
                "restore_no_owner": True,
                **login,
                "restore_create": {"owner": USER},
            },  # fmt: skip
        )
    finally:
        stop.set()
        thread.join()
    assert not dumped.failed, dumped.msg
    assert not restored.failed, restored.msg
    assert restored["restore"]["dropped"] and restored["restore"]["tables"] == EXPECTED
    assert seen == [], "the password was on a command line"
    for result in (dumped, restored):
        text = json.dumps(result.data) + result.stdout
        assert PASSWORD not in text and PASSWORD.split("\n")[0] not in text
    # And a wrong password fails, saying so without echoing it.
    wrong = run_module(
        "pg_backup_dump", {"database": DB, "dest": str(tmp_path / "w.dump"), **login, "login_password": PASSWORD + "x"}
    )
    assert wrong.failed and "password authentication failed" in wrong.msg, wrong.msg
    assert PASSWORD.split("\n")[0] not in wrong.stdout
    assert not (tmp_path / "w.dump").exists()


def test_restore_level_in_the_container_keeps_or_drops_its_database(pg, tmp_path):
    """The drill (dropped) and the real restore's new database (kept), both through the container."""
    dest = tmp_path / "r.dump"
    assert not run_module("pg_backup_dump", dump_args(pg, dest)).failed
    manifest = tmp_path / "r.json"
    manifest.write_text(json.dumps({"format": "custom", "sha256": file_sha256(str(dest)), "tables": EXPECTED}))
    common = {"path": str(dest), "manifest": str(manifest), "level": "restore", "container": pg,
              "restore_jobs": 2, "restore_no_owner": False, "restore_create": {"owner": USER, "template": "template0"},
              "login_unix_socket": "/var/run/postgresql"}  # fmt: skip
    drill = run_module("pg_dump_verify", common)
    assert not drill.failed, drill.msg
    assert drill["restore"]["dropped"] and drill["restore"]["tables"] == EXPECTED
    assert drill["restore"]["database"] not in psql(pg, "SELECT string_agg(datname, ' ') FROM pg_database")
    kept = run_module("pg_dump_verify", {**common, "restore_database": "journal_restore_x", "restore_keep": True})
    assert not kept.failed, kept.msg
    assert kept["restore"]["kept"]
    assert psql(pg, "SELECT count(*) FROM audit.event", db="journal_restore_x") == "250"
    assert psql(pg, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'journal_restore_x'") == USER
    psql(pg, "DROP DATABASE journal_restore_x", db="postgres")


@pytest.mark.parametrize("level", ["read", "restore"])
def test_a_truncated_dump_fails_verification_through_the_container(pg, tmp_path, level):
    dest = tmp_path / "t.dump"
    assert not run_module("pg_backup_dump", dump_args(pg, dest, compress=0)).failed
    data = dest.read_bytes()
    cut = tmp_path / "cut.dump"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    before = psql(pg, "SELECT count(*) FROM pg_database", db="postgres")
    result = run_module("pg_dump_verify", {"path": str(cut), "level": level, "container": pg})
    assert result.failed and result["reason"] == "truncated", result.msg
    assert psql(pg, "SELECT count(*) FROM pg_database", db="postgres") == before


def _kill_pg_dump_of(container_id: str, dest: Path, stop: threading.Event) -> None:
    """SIGKILL the pg_dump of that container (its processes are this machine's, in its cgroup) once it
    has written part of dest; nobody else's pg_dump."""
    while not stop.is_set():
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                comm = Path(f"/proc/{pid}/comm").read_text().strip()
                cgroup = Path(f"/proc/{pid}/cgroup").read_text()
            except OSError:
                continue
            if comm == "pg_dump" and container_id in cgroup and dest.exists() and dest.stat().st_size > 0:
                os.kill(int(pid), signal.SIGKILL)
                return
        time.sleep(0.002)


def test_a_truncated_stream_fails_the_dump_and_leaves_nothing(pg, tmp_path):
    """pg_restore in the container must read every block while the dump is written: a pg_dump killed
    half way (the container's pg_dump stopped) fails the dump and removes the file."""
    dest = tmp_path / "k.dump"
    container_id = docker("inspect", "-f", "{{.Id}}", pg).stdout.strip()
    psql(pg, "CREATE TABLE public.big AS SELECT g, md5(g::text) AS h FROM generate_series(1, 1000000) g")
    stop = threading.Event()
    killer = threading.Thread(target=_kill_pg_dump_of, args=(container_id, dest, stop), daemon=True)
    try:
        killer.start()
        result = run_module("pg_backup_dump", dump_args(pg, dest, verify="content", compress=0))
    finally:
        stop.set()
        killer.join()
        psql(pg, "DROP TABLE public.big")
    assert result.failed, result.msg
    assert not dest.exists()


def test_directory_format_is_refused_with_a_container(pg, tmp_path):
    result = run_module("pg_backup_dump", dump_args(pg, tmp_path / "d", format="directory"))
    assert result.failed and "only the custom format streams" in result.msg and "app_db_compose_service" in result.msg
    assert not (tmp_path / "d").exists()


def test_a_container_that_is_not_there_fails_naming_it(tmp_path):
    result = run_module("pg_backup_dump", dump_args("cdb-no-such-container", tmp_path / "n.dump"))
    assert result.failed and "cdb-no-such-container" in result.msg, result.msg
    assert not (tmp_path / "n.dump").exists()


def test_a_gzip_plain_dump_is_restored_through_the_container(pg, tmp_path):
    """Plain SQL reaches psql in the container on its stdin, decompressed on the way."""
    sql_text = docker("exec", "--user", "postgres", pg, "pg_dump", "-d", DB).stdout
    dump = tmp_path / "p.sql.gz"
    dump.write_bytes(gzip.compress(sql_text.encode()))
    result = run_module(
        "pg_dump_verify", {"path": str(dump), "level": "restore", "container": pg, "restore_no_owner": False}
    )
    assert not result.failed, result.msg
    assert result["format"] == "plain_gzip" and result["restore"]["tool"] == "psql"
    assert result["restore"]["tables"] == EXPECTED and result["restore"]["dropped"]
