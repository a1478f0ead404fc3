"""pg_backup_dump against the test PostgreSQL: counts from the dump's own snapshot, cleanup on failure."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
import threading
from pathlib import Path

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
        "pg_bin_dir": str(server.bin_dir),
        **extra,
    }


def test_the_former_option_name_bin_dir_still_works(database, tmp_path):
    """pg_bin_dir is the family's name (doc fragment opsbook.webstack.postgres); bin_dir stays an alias."""
    given = args(database, tmp_path / "b.dump")
    given["bin_dir"] = given.pop("pg_bin_dir")
    result = run_module("pg_backup_dump", given)
    assert not result.failed, result.msg
    assert result["tables"] == {"public.article": 3000, "audit.event": 250}


def test_a_pg_bin_dir_without_pg_dump_fails_naming_it(database, tmp_path):
    dest = tmp_path / "b.dump"
    result = run_module("pg_backup_dump", args(database, dest, pg_bin_dir=str(tmp_path)))
    assert result.failed and f"pg_dump was not found in pg_bin_dir {tmp_path}" in result.msg, result.msg
    assert not dest.exists()


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


@pytest.fixture
def late_rows_removed(database):
    """The writer's rows go after the test: the other tests count the module fixture's rows, in
    whatever order xdist runs them."""
    yield
    database.execute("DELETE FROM audit.event WHERE note = 'late'", dbname=DB)


@pytest.mark.parametrize("verify", ["none", "content"])
@pytest.mark.usefixtures("late_rows_removed")
def test_rows_written_during_the_dump_are_in_neither_the_counts_nor_the_dump(database, tmp_path, verify):
    """The counts and the dump share one snapshot: concurrent inserts change neither."""
    stop = threading.Event()

    def writer():
        while not stop.is_set():
            database.execute("INSERT INTO audit.event (note) SELECT 'late' FROM generate_series(1, 50)", dbname=DB)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        result = run_module("pg_backup_dump", args(database, tmp_path / "c.dump", verify=verify))
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


# --------------------------------------------------------------------------- verify=content


def test_verify_content_reads_the_dump_as_it_is_written(database, tmp_path):
    dest = tmp_path / "v.dump"
    result = run_module("pg_backup_dump", args(database, dest, verify="content"))
    assert not result.failed, result.msg
    verification = result["verification"]
    assert verification["level"] == "content" and verification["during_dump"] is True
    assert verification["tables"] == 2
    assert verification["rows"] == sum(result["tables"].values())
    assert verification["pg_restore_read"] is True
    assert verification["data_bytes"] > 0
    # The finished file is a normal archive whose TOC has the data offsets (pg_restore -j needs them).
    archive = open_archive(str(dest))
    archive.read()
    assert archive.tables() == result["tables"]
    assert result["sha256"] == file_sha256(str(dest))


def test_verify_content_needs_the_custom_format(database, tmp_path):
    result = run_module("pg_backup_dump", args(database, tmp_path / "d", format="directory", verify="content"))
    assert result.failed and "verify=content needs format=custom" in result.msg
    assert not (tmp_path / "d").exists()


FAKE_PG_DUMP = """#!/bin/bash
# Stands in for pg_dump: writes {source} to the --file path in pieces, pausing between them as a
# dump in progress does, and exits 0 whatever it wrote.
if [ "$1" = --version ]; then echo "pg_dump (PostgreSQL) 15.0"; exit 0; fi
while [ $# -gt 0 ]; do if [ "$1" = --file ]; then dest="$2"; fi; shift; done
size=$(stat -c %s {source})
step=$(( size / 5 + 7 ))
offset=0
: > "$dest"
while [ $offset -lt $size ]; do
  tail -c +$(( offset + 1 )) {source} | head -c $step >> "$dest"
  offset=$(( offset + step ))
  sleep 0.1
done
"""


def fake_bin(database, tmp_path, source):
    """A bin_dir whose pg_dump writes the given file slowly and whose pg_restore is the real one."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "pg_dump"
    fake.write_text(FAKE_PG_DUMP.format(source=source))
    fake.chmod(0o755)
    (bin_dir / "pg_restore").symlink_to(database.bin("pg_restore"))
    return str(bin_dir)


def real_dump(database, dbname, path):
    """pg_dump -Fc of dbname, made by the real pg_dump of the test server."""
    subprocess.run(
        [database.bin("pg_dump"), "-Fc", "-f", path, "-h", database.host, "-p", str(database.port),
         "-U", database.user, dbname],
        check=True, env={"PGPASSWORD": database.password},
    )  # fmt: skip
    return path


def dump_through_fake(database, tmp_path, source):
    """pg_backup_dump with verify=content whose pg_dump writes source slowly; (result, dest)."""
    dest = tmp_path / "out.dump"
    fake = fake_bin(database, tmp_path, source)
    return run_module("pg_backup_dump", args(database, dest, verify="content", bin_dir=fake)), dest


@pytest.fixture
def good_archive(database, tmp_path):
    """A real dump of the test database, taken now (the counts the module takes will match it)."""
    return real_dump(database, DB, tmp_path / "good.dump")


def test_verify_content_follows_a_file_that_grows_in_pieces(database, tmp_path, good_archive):
    result, dest = dump_through_fake(database, tmp_path, good_archive)
    assert not result.failed, result.msg
    assert result["verification"]["rows"] == sum(result["tables"].values())
    assert dest.read_bytes() == good_archive.read_bytes()


def corrupt_copy(source, tmp_path, name, change):
    data = bytearray(source.read_bytes())
    change(data)
    path = tmp_path / name
    path.write_bytes(bytes(data))
    return path


def test_verify_content_removes_a_dump_cut_short(database, tmp_path, good_archive):
    cut = corrupt_copy(good_archive, tmp_path, "cut.dump", lambda d: d.__delitem__(slice(len(d) // 2, None)))
    result, dest = dump_through_fake(database, tmp_path, cut)
    assert result.failed
    assert result["verification"]["reason"] == "truncated", result.msg
    assert "failed verification while it was written" in result.msg and "It was removed" in result.msg
    assert not dest.exists()


def test_verify_content_removes_a_dump_with_a_flipped_byte(database, tmp_path, good_archive):
    archive = open_archive(str(good_archive))
    archive.structure()
    member = max(archive.members, key=lambda m: m.stored_bytes)

    def flip(data):
        # Well inside the largest table's compressed data, past the block and chunk headers.
        data[member.offset + member.stored_bytes // 2] ^= 0xFF

    bad = corrupt_copy(good_archive, tmp_path, "flip.dump", flip)
    result, dest = dump_through_fake(database, tmp_path, bad)
    assert result.failed, result.data
    assert result["verification"].get("reason") in ("decompression_error", "truncated", "corrupt"), result.msg
    assert not dest.exists()


def test_verify_content_refuses_a_dump_whose_rows_differ_from_the_snapshot(database, tmp_path):
    other = "backup_dump_other"
    database.create_database(other)
    database.execute(
        "CREATE TABLE public.article (id int); INSERT INTO public.article SELECT generate_series(1, 5)", dbname=other
    )
    result, dest = dump_through_fake(database, tmp_path, real_dump(database, other, tmp_path / "other.dump"))
    assert result.failed
    assert result["verification"]["reason"] == "row_count_mismatch", result.msg
    assert "public.article: expected" in result.msg and "found 5 rows" in result.msg
    assert not dest.exists()


def test_migrations_are_read_in_the_dumps_snapshot(database, tmp_path):
    """migrations=django: the applied migrations of exactly the data dumped, even while one is applied."""
    name = "backup_dump_migrations"
    database.create_database(name)
    database.execute(
        "CREATE TABLE public.django_migrations (id serial PRIMARY KEY, app text, name text, applied timestamptz);"
        "INSERT INTO public.django_migrations (app, name, applied) VALUES"
        " ('articles', '0001_initial', now()), ('articles', '0002_article_summary', now()),"
        " ('auth', '0001_initial', now());"
        "CREATE TABLE public.filler AS SELECT g AS id, md5(g::text) AS body FROM generate_series(1, 20000) g;",
        dbname=name,
    )
    stop = threading.Event()

    def migrate():
        n = 3
        while not stop.is_set():
            database.execute(
                f"INSERT INTO public.django_migrations (app, name, applied) VALUES ('articles', '{n:04d}_late', now())",
                dbname=name,
            )
            n += 1

    thread = threading.Thread(target=migrate, daemon=True)
    thread.start()
    try:
        result = run_module(
            "pg_backup_dump", {**args(database, tmp_path / "m.dump", migrations="django"), "database": name}
        )
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not result.failed, result.msg
    applied = {entry["app"]: entry for entry in result["migrations"]}
    assert applied["auth"] == {"app": "auth", "latest": "0001_initial", "applied": 1}
    assert applied["articles"]["applied"] == result["tables"]["public.django_migrations"] - 1
    sql = subprocess.run(
        [database.bin("pg_restore"), "-f", "-", "-t", "django_migrations", tmp_path / "m.dump"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    rows = [line.split("\t") for line in sql.split("FROM stdin;\n", 1)[1].split("\\.\n", 1)[0].splitlines()]
    in_dump = sorted(r[2] for r in rows if r[1] == "articles")
    assert applied["articles"]["latest"] == in_dump[-1] and applied["articles"]["applied"] == len(in_dump)
    assert database.execute("SELECT count(*) FROM public.django_migrations", dbname=name)[0][0] > len(rows)


def test_migrations_of_a_database_without_django_are_empty(database, tmp_path):
    result = run_module("pg_backup_dump", args(database, tmp_path / "n.dump", migrations="django"))
    assert not result.failed and result["migrations"] == []
    assert run_module("pg_backup_dump", args(database, tmp_path / "o.dump"))["migrations"] == []


# prepare: the backup role's first step in the dump's call (directory, published already, lock).


@pytest.fixture
def backup_parent():
    """A directory the dump's owner can reach (pytest's tmp_path is root's, mode 0700)."""
    parent = Path(tempfile.mkdtemp(prefix="opsbook-prepare-", dir="/tmp"))
    parent.chmod(0o755)
    yield parent
    shutil.rmtree(parent, ignore_errors=True)


def owner_name() -> str:
    """The backup role's owner when the tests run as root (the module drops to it); else the tests' user."""
    if os.geteuid() == 0:
        return "postgres"
    return pwd.getpwuid(os.geteuid()).pw_name


def prepared_args(server, directory: Path, token: str = "run-a", **extra):
    return args(
        server,
        directory / ".tmp-p1.dump",
        prepare={"path": str(directory), "owner": owner_name(), "done": "journal-p1.json",
                 "lock": {"token": token, "holder": {"user": "alice", "action": "backup p1 of journal"}}},
        **extra,
    )  # fmt: skip


def test_prepare_makes_the_directory_takes_the_lock_and_dumps_as_its_owner(database, backup_parent):
    directory = backup_parent / "journal"
    result = run_module("pg_backup_dump", prepared_args(database, directory, verify="content"), isolated=True)
    assert not result.failed, result.msg
    owner = pwd.getpwnam(owner_name())
    info = directory.stat()
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (owner.pw_uid, owner.pw_gid, 0o700)
    assert result["directory"] == "created" and result["done"] is False
    assert result["lock"]["taken"] is True and result["lock"]["holder"]["user"] == "alice"
    holder = json.loads((directory / ".lock" / "holder.json").read_text())
    assert holder["token"] == "run-a" and (directory / ".lock").stat().st_uid == owner.pw_uid
    dump = directory / ".tmp-p1.dump"
    assert dump.stat().st_uid == owner.pw_uid and result["tables"]["audit.event"] == 250
    assert result["verification"]["level"] == "content"


def test_prepare_a_published_backup_is_not_taken_again(database, backup_parent):
    directory = backup_parent / "journal"
    first = run_module("pg_backup_dump", prepared_args(database, directory), isolated=True)
    assert not first.failed, first.msg
    shutil.rmtree(directory / ".lock")
    (directory / ".tmp-p1.dump").rename(directory / "journal-p1.dump")
    (directory / "journal-p1.json").write_text("{}")
    before = sorted(p.name for p in directory.iterdir())
    again = run_module("pg_backup_dump", prepared_args(database, directory, token="run-b"), isolated=True)
    assert not again.failed and not again.changed, again.msg
    assert again["done"] is True and again["lock"]["taken"] is False and "tables" not in again.data
    assert sorted(p.name for p in directory.iterdir()) == before  # no lock, no dump


def test_prepare_a_held_lock_fails_naming_its_holder_and_dumps_nothing(database, backup_parent):
    directory = backup_parent / "journal"
    first = run_module("pg_backup_dump", prepared_args(database, directory), isolated=True)
    assert not first.failed, first.msg
    (directory / ".tmp-p1.dump").unlink()
    result = run_module("pg_backup_dump", prepared_args(database, directory, token="run-b"), isolated=True)
    assert result.failed and "alice" in result.msg and "backup p1 of journal" in result.msg, result.msg
    assert not (directory / ".tmp-p1.dump").exists()
    assert json.loads((directory / ".lock" / "holder.json").read_text())["token"] == "run-a"  # left alone


def test_prepare_a_failed_dump_releases_the_lock(database, backup_parent):
    directory = backup_parent / "journal"
    result = run_module(
        "pg_backup_dump", dict(prepared_args(database, directory), database="no_such_database"), isolated=True
    )
    assert result.failed and "no_such_database" in result.msg, result.msg
    assert result["lock"]["taken"] is False
    assert sorted(p.name for p in directory.iterdir()) == []  # no lock, no partial dump


def test_prepare_check_mode_changes_nothing(database, backup_parent):
    directory = backup_parent / "journal"
    result = run_module("pg_backup_dump", prepared_args(database, directory), check_mode=True, isolated=True)
    assert not result.failed and result["directory"] == "created" and result["lock"]["taken"] is False, result.msg
    assert not directory.exists()
