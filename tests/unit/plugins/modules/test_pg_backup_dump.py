"""pg_backup_dump against the test PostgreSQL: counts from the dump's own snapshot, cleanup on failure."""

from __future__ import annotations

import subprocess
import threading

import pytest
from ansible_collections.opsbook.webstack.plugins.module_utils.pg_archive import file_sha256, open_archive
from module_runner import run_module

DB = "backup_dump_test"


@pytest.fixture(scope="module")
def database(postgres_server):
    postgres_server.create_database(DB)
    postgres_server.execute(
        "CREATE TABLE public.article (id serial PRIMARY KEY, body text, meta jsonb);"
        "CREATE SCHEMA audit; CREATE TABLE audit.event (id bigserial PRIMARY KEY, note text);"
        "INSERT INTO public.article (body, meta) SELECT md5(g::text), jsonb_build_object('n', g)"
        "  FROM generate_series(1, 3000) g;"
        "INSERT INTO audit.event (note) SELECT 'e' || g FROM generate_series(1, 250) g;",
        dbname=DB,
    )
    return postgres_server


def args(server, dest, **extra):
    return {
        "database": DB,
        "dest": str(dest),
        "login_host": server.host,
        "login_port": server.port,
        "login_user": server.user,
        "login_password": server.password,
        "bin_dir": str(server.bin_dir),
        **extra,
    }


def test_counts_match_the_archive_and_the_file_is_private(database, tmp_path):
    dest = tmp_path / "b.dump"
    result = run_module("pg_backup_dump", args(database, dest))
    assert not result.failed, result.msg
    assert result["tables"] == {"public.article": 3000, "audit.event": 250}
    assert result["sha256"] == file_sha256(str(dest))
    assert result["size"] == dest.stat().st_size
    assert oct(dest.stat().st_mode & 0o777) == "0o600"
    assert result["server_version"].startswith("15")
    archive = open_archive(str(dest))
    assert archive.format == "custom"


def test_rows_written_during_the_dump_are_in_neither_the_counts_nor_the_dump(database, tmp_path):
    """The counts and the dump share one snapshot: concurrent inserts change neither."""
    stop = threading.Event()

    def writer():
        while not stop.is_set():
            database.execute("INSERT INTO audit.event (note) SELECT 'late' FROM generate_series(1, 50)", dbname=DB)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        result = run_module("pg_backup_dump", args(database, tmp_path / "c.dump"))
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not result.failed, result.msg
    restored = tmp_path / "c.sql"
    subprocess.run([database.bin("pg_restore"), "-f", restored, tmp_path / "c.dump"], check=True)
    text = restored.read_text()
    copy = text.split("COPY audit.event", 1)[1].split("\\.\n", 1)[0]
    rows_in_dump = len(copy.strip().splitlines()) - 1  # the first line is the rest of the COPY statement
    assert rows_in_dump == result["tables"]["audit.event"]
    # The writer did add rows while the dump ran: the test saw concurrent change.
    assert database.execute("SELECT count(*) FROM audit.event", dbname=DB)[0][0] > rows_in_dump


def test_directory_format_with_parallel_jobs(database, tmp_path):
    dest = tmp_path / "dir"
    result = run_module("pg_backup_dump", args(database, dest, format="directory", jobs=2))
    assert not result.failed, result.msg
    assert (dest / "toc.dat").is_file()
    assert oct(dest.stat().st_mode & 0o777) == "0o700"


def test_check_mode_writes_nothing(database, tmp_path):
    dest = tmp_path / "never.dump"
    result = run_module("pg_backup_dump", args(database, dest), check_mode=True)
    assert result.changed and not result.failed
    assert not dest.exists()


def test_existing_destination_is_refused(database, tmp_path):
    dest = tmp_path / "exists.dump"
    dest.write_text("precious")
    result = run_module("pg_backup_dump", args(database, dest))
    assert result.failed and "already exists" in result.msg
    assert dest.read_text() == "precious"


def test_a_failed_dump_leaves_no_file_and_no_password(database, tmp_path):
    dest = tmp_path / "fail.dump"
    result = run_module("pg_backup_dump", {**args(database, dest), "database": "no_such_db"})
    assert result.failed
    assert "no_such_db" in result.msg
    assert not dest.exists()
    assert database.password not in result.stdout
