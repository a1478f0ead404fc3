"""opsbook.webstack.pg_dump_verify against real archives written by the real pg_dump.

Every archive comes from a database of the test PostgreSQL (pg_dump_fixtures.build_dumps, once per
session); each damaged case damages a private copy. The module runs in its own process with its
arguments on stdin, as on a managed host; two cases go through the `ansible` command line.

Beside each failure the module must catch, the tests assert what pg_restore does with the same file
(the facts in docs/pg_dump_verify.md): `pg_restore -l` and `pg_restore -f /dev/null` exit 0 on
several of them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/unit/plugins: pg_dump_fixtures
import pg_dump_fixtures as fx  # noqa: E402
from ansible_collections.opsbook.webstack.plugins.module_utils.pg_archive import open_archive  # noqa: E402

BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def dumps(postgres_server, tmp_path_factory):
    return fx.build_dumps(postgres_server, tmp_path_factory.mktemp("pg-dumps"))


def verify(path, level="content", **args):
    return fx.run_module({"path": str(path), "level": level, **args})


def assert_failed(run, level, reason, *words):
    assert run.failed, run.result
    assert run.rc == 1
    assert run["failed_level"] == level, run.msg
    assert run["reason"] == reason, run.msg
    assert run["changed"] is False
    for word in words:
        assert word in run.msg, run.msg


# --------------------------------------------------------------------------- good archives


@pytest.mark.parametrize("kind", list(fx.KINDS))
def test_every_good_format_passes_every_level(dumps, postgres_server, tmp_path, kind):
    manifest = dumps.manifest(kind, tmp_path)
    run = verify(dumps.files[kind], "restore", manifest=str(manifest), **fx.login_args(postgres_server))
    assert not run.failed, run.msg
    assert run["changed"] is False
    assert run["format"] == fx.FORMAT_OF[kind]
    assert run["levels_passed"] == ["header", "structure", "read", "content", "restore"]
    assert run["level_reached"] == "restore"
    assert set(run["durations"]) == {"header", "structure", "read", "content", "restore"}
    assert run["skipped_levels"] == []
    assert run["tables"] == dumps.counts
    assert run["restore"]["tables"] == dumps.counts
    assert run["restore"]["dropped"] is True
    # Archives are loaded while they are read; plain SQL only after (its meta-commands are found by reading).
    assert run["restore"]["during_read"] is (fx.FORMAT_OF[kind] in ("custom", "directory", "tar"))
    assert run["verified"] == {"sha256": True, "sha256_source": "manifest", "row_counts": 4, "expect_tables": 0}
    assert run["server_version"].startswith("15.")
    assert run["pg_dump_version"].startswith("15.")
    if fx.FORMAT_OF[kind] in ("custom", "directory", "tar"):
        assert run["database"] == fx.SOURCE_DB
        assert run["archive_version"] == "1.14-0"
        assert run["created"][:2] == "20"
        assert run["large_objects"] == (0 if kind == "tar_no_blobs" else 2)
        assert run["compression"] == ("none" if kind.endswith("z0") or kind.startswith("tar") else "gzip")
    assert postgres_server.password not in run.stdout + run.stderr
    assert fx.scratch_databases(postgres_server) == []


def test_header_level_reads_only_the_header(dumps):
    run = verify(dumps.files["custom"], "header")
    assert not run.failed, run.msg
    assert run["levels_passed"] == ["header"]
    assert run["compression"] == "gzip" and run["compression_level"] == -1
    assert run["size"] == dumps.files["custom"].stat().st_size
    assert "tables" not in run.result and "sha256" not in run.result


def test_check_mode_skips_restore_and_creates_nothing(dumps, postgres_server, tmp_path):
    """Through the ansible command line, from outside the repository (no ansible.cfg)."""
    extra = tmp_path / "vars.json"
    extra.write_text(json.dumps({"verify_password": postgres_server.password}))
    extra.chmod(0o600)
    args = {
        "path": str(dumps.files["custom"]),
        "level": "restore",
        "expect_tables": ["public.orders"],
        **fx.login_args(postgres_server, login_password="{{ verify_password }}"),
    }
    proc = subprocess.run(
        [
            str(BIN / "ansible"),
            "localhost",
            "-i",
            "localhost,",
            "-c",
            "local",
            "-m",
            "opsbook.webstack.pg_dump_verify",
            "-a",
            json.dumps(args),
            "-e",
            f"@{extra}",
            "-e",
            f"ansible_python_interpreter={sys.executable}",
            "--check",
        ],
        cwd=tmp_path,
        env={
            **os.environ,
            "ANSIBLE_COLLECTIONS_PATH": str(fx.COLLECTIONS),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_LOCALHOST_WARNING": "0",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout[proc.stdout.index("{") :])
    assert result["changed"] is False
    assert result["level_reached"] == "content"
    assert result["skipped_levels"] == ["restore"]
    assert "restore" not in result["durations"]
    assert "check mode" in result["msg"]
    assert fx.scratch_databases(postgres_server) == []
    assert postgres_server.password not in proc.stdout + proc.stderr


# --------------------------------------------------------------------------- custom format


@pytest.mark.parametrize("cut", ["10%", "50%", "99%", "one byte short"])
def test_truncated_custom_archive_fails_structure(dumps, postgres_server, tmp_path, cut):
    path = dumps.copy("custom", tmp_path)
    size = path.stat().st_size
    fx.truncate(path, {"10%": size // 10, "50%": size // 2, "99%": size * 99 // 100, "one byte short": size - 1}[cut])
    # pg_restore -l reads only the header and the TOC: it sees nothing wrong.
    listing = fx.pg_restore(postgres_server, "-l", str(path))
    assert listing.returncode == 0, listing.stderr
    full = fx.pg_restore(postgres_server, "-f", os.devnull, str(path))
    assert full.returncode == 1 and "end of file" in full.stderr, full.stderr
    run = verify(path, "read", pg_bin_dir=str(postgres_server.bin_dir))
    assert_failed(run, "structure", "truncated", str(path), "is truncated", "the data of ")
    assert run["level_reached"] == "header"


def test_truncated_custom_archive_without_data_offsets(dumps, tmp_path):
    """Written through a pipe, the TOC has no offsets: the block walk alone finds the cut."""
    path = dumps.copy("custom_pipe", tmp_path)
    fx.truncate(path, path.stat().st_size // 2)
    assert fx.pg_restore(dumps.server, "-l", str(path)).returncode == 0
    assert fx.pg_restore(dumps.server, "-f", os.devnull, str(path)).returncode == 1
    assert_failed(verify(path, "structure"), "structure", "truncated")


def test_flipped_byte_in_compressed_data_fails_read(dumps, postgres_server, tmp_path):
    path = dumps.copy("custom", tmp_path)
    orders = next(m for m in open_archive(str(path)).structure() if m.name == "public.orders")
    # Inside the first chunk of the table's zlib stream: block type (1), dump ID (5), chunk length (5).
    fx.flip_byte(path, orders.offset + 1 + 5 + 5 + 200)
    assert fx.pg_restore(postgres_server, "-l", str(path)).returncode == 0
    full = fx.pg_restore(postgres_server, "-f", os.devnull, str(path))
    assert full.returncode == 1 and "could not uncompress data" in full.stderr, full.stderr
    run = verify(path, "read", pg_bin_dir=str(postgres_server.bin_dir))
    assert_failed(run, "read", "decompression_error", "public.orders", "cannot be decompressed")
    assert run["levels_passed"] == ["header", "structure"]


def test_flipped_byte_fails_read_at_level_restore_and_the_scratch_database_is_dropped(dumps, postgres_server, tmp_path):
    """The scratch restore runs while the archive is read: a read failure still fails the run, at level read."""
    path = dumps.copy("custom", tmp_path)
    orders = next(m for m in open_archive(str(path)).structure() if m.name == "public.orders")
    fx.flip_byte(path, orders.offset + 1 + 5 + 5 + 200)
    run = verify(path, "restore", restore_jobs=2, **fx.login_args(postgres_server))
    assert_failed(run, "read", "decompression_error", "public.orders", "cannot be decompressed")
    assert run["levels_passed"] == ["header", "structure"]
    assert run["restore"]["during_read"] is True and run["restore"]["dropped"] is True
    assert fx.scratch_databases(postgres_server) == []


def test_manifest_mismatch_fails_content_at_level_restore_and_drops_the_scratch_database(
    dumps, postgres_server, tmp_path
):
    manifest = dumps.manifest("custom", tmp_path)
    data = json.loads(manifest.read_text())
    data["tables"]["public.orders"] += 1
    manifest.write_text(json.dumps(data))
    run = verify(dumps.files["custom"], "restore", manifest=str(manifest), **fx.login_args(postgres_server))
    assert_failed(run, "content", "row_count_mismatch", "public.orders")
    assert run["restore"]["dropped"] is True
    assert fx.scratch_databases(postgres_server) == []


@pytest.mark.parametrize("kind", ["custom", "directory"])
def test_restore_with_two_jobs_counts_every_table(dumps, postgres_server, tmp_path, kind):
    """Two pg_restore jobs, and the rows counted on two connections at once: every table, exact."""
    manifest = dumps.manifest(kind, tmp_path)
    run = verify(dumps.files[kind], "restore", manifest=str(manifest), restore_jobs=2, **fx.login_args(postgres_server))
    assert not run.failed, run.msg
    assert run["restore"]["tables"] == dumps.counts
    assert fx.scratch_databases(postgres_server) == []


def test_a_named_database_created_like_the_live_one_is_kept_when_every_level_passed(dumps, postgres_server, tmp_path):
    """Issue 19 item 6: the restore role's real restore and its drill load their database with this one
    call (restore_create as the live database; the restore keeps it, the drill does not)."""
    manifest = dumps.manifest("custom", tmp_path)
    create = {"template": "template0", "encoding": "UTF8", "lc_collate": "C", "lc_ctype": "C",
              "owner": postgres_server.user}  # fmt: skip
    args = dict(manifest=str(manifest), restore_no_owner=False, restore_create=create, **fx.login_args(postgres_server))
    try:
        run = verify(dumps.files["custom"], "restore", restore_database="opsbook_kept", restore_keep=True, **args)
        assert not run.failed, run.msg
        assert run["restore"]["database"] == "opsbook_kept" and run["restore"]["kept"] is True
        assert run["restore"]["dropped"] is False and run["restore"]["tables"] == dumps.counts
        row = postgres_server.execute(
            "SELECT pg_encoding_to_char(encoding), datcollate, datctype FROM pg_database WHERE datname = 'opsbook_kept'"
        )
        assert row == [("UTF8", "C", "C")]
        # It exists now: the module never loads into (or drops) a database it did not create.
        again = verify(dumps.files["custom"], "restore", restore_database="opsbook_kept", restore_keep=True, **args)
        assert_failed(again, "restore", "restore_error", "opsbook_kept")
        assert postgres_server.execute("SELECT count(*) FROM pg_database WHERE datname = 'opsbook_kept'") == [(1,)]
    finally:
        postgres_server.drop_database("opsbook_kept")


def test_a_kept_database_whose_counts_differ_is_dropped(dumps, postgres_server, tmp_path):
    manifest = dumps.manifest("custom", tmp_path)
    data = json.loads(manifest.read_text())
    data["tables"]["public.orders"] += 1
    manifest.write_text(json.dumps(data))
    run = verify(dumps.files["custom"], "restore", manifest=str(manifest), restore_database="opsbook_bad",
                 restore_keep=True, **fx.login_args(postgres_server))  # fmt: skip
    assert_failed(run, "content", "row_count_mismatch", "public.orders")
    assert run["restore"]["dropped"] is True and run["restore"]["kept"] is False
    assert postgres_server.execute("SELECT count(*) FROM pg_database WHERE datname = 'opsbook_bad'") == [(0,)]


def test_damaged_sql_in_the_toc_fails_restore_with_a_message_ansible_can_carry(dumps, postgres_server, tmp_path):
    """Bytes that are not UTF-8 in a TOC statement: pg_restore quotes them; the message must stay valid text."""
    path = dumps.copy("custom", tmp_path)
    data = path.read_bytes()
    at = data.index(b"_pkey PRIMARY KEY")
    path.write_bytes(data[: at + 1] + b"\xff" * 4 + data[at + 5 :])
    run = verify(path, "restore", **fx.login_args(postgres_server))
    assert_failed(run, "restore", "restore_error", "invalid byte sequence")
    assert "\ufffd" in run.msg
    assert not [c for c in run.msg if 0xD800 <= ord(c) <= 0xDFFF]  # Ansible refuses surrogates
    assert fx.scratch_databases(postgres_server) == []


VERIFIED = {"verified": True, "verification": {"level": "content", "during_dump": True}}


@pytest.mark.parametrize("kind", ["custom", "directory"])
def test_a_manifest_that_records_a_verification_meets_the_read_level_when_the_sha256_matches(
    dumps, postgres_server, tmp_path, kind
):
    manifest = dumps.manifest(kind, tmp_path, **VERIFIED)
    args = {"manifest": str(manifest), "restore_jobs": 2, **fx.login_args(postgres_server)}
    run = verify(dumps.files[kind], "restore", trust_manifest_verification=True, **args)
    assert not run.failed, run.msg
    assert run["read_from_manifest"] == {"manifest": str(manifest), "verified_level": "content"}
    assert run["levels_passed"] == ["header", "structure", "read", "content", "restore"]
    assert run["tables"] == dumps.counts and run["restore"]["tables"] == dumps.counts
    assert run["verified"]["sha256"] is True
    # Without the option, or without a recorded verification, the archive is read as always.
    assert "read_from_manifest" not in verify(dumps.files[kind], "restore", **args).result
    plain = dumps.manifest(kind, tmp_path)
    run = verify(dumps.files[kind], "restore", trust_manifest_verification=True, **{**args, "manifest": str(plain)})
    assert not run.failed and "read_from_manifest" not in run.result
    assert fx.scratch_databases(postgres_server) == []


def test_a_trusted_manifest_does_not_cover_a_changed_file(dumps, postgres_server, tmp_path):
    manifest = dumps.manifest("custom", tmp_path, **VERIFIED)
    path = dumps.copy("custom", tmp_path)
    orders = next(m for m in open_archive(str(path)).structure() if m.name == "public.orders")
    fx.flip_byte(path, orders.offset + 1 + 5 + 5 + 200)
    args = {"manifest": str(manifest), "trust_manifest_verification": True, **fx.login_args(postgres_server)}
    run = verify(path, "restore", **args)
    assert_failed(run, "read", "checksum_mismatch", "the file changed since it was verified")
    assert fx.scratch_databases(postgres_server) == []


def test_changed_byte_in_uncompressed_archive_is_caught_only_by_sha256(dumps, postgres_server, tmp_path):
    manifest = dumps.manifest("custom_z0", tmp_path)
    path = dumps.copy("custom_z0", tmp_path)
    orders = next(m for m in open_archive(str(path)).structure() if m.name == "public.orders")
    data = bytearray(path.read_bytes())
    at = orders.offset + orders.stored_bytes // 2
    while not chr(data[at]).isalnum():
        at += 1
    data[at] = ord("x") if data[at] != ord("x") else ord("y")
    path.write_bytes(bytes(data))
    # Neither pg_restore nor the levels up to read can tell.
    assert fx.pg_restore(postgres_server, "-l", str(path)).returncode == 0
    assert fx.pg_restore(postgres_server, "-f", os.devnull, str(path)).returncode == 0
    assert not verify(path, "content", pg_bin_dir=str(postgres_server.bin_dir)).failed
    run = verify(path, "content", manifest=str(manifest), pg_bin_dir=str(postgres_server.bin_dir))
    assert_failed(run, "content", "checksum_mismatch", "sha256", str(manifest))
    assert run["tables"] == dumps.counts  # the rows are all there: only the checksum knows
    run = verify(path, "content", checksum="0" * 64, manifest=str(manifest), pg_bin_dir=str(postgres_server.bin_dir))
    assert_failed(run, "content", "checksum_mismatch", "checksum expects " + "0" * 64)


def test_unsupported_archive_version(dumps, tmp_path):
    path = dumps.copy("custom", tmp_path)
    data = bytearray(path.read_bytes())
    data[6] = 99  # minor version 1.99
    path.write_bytes(bytes(data))
    assert_failed(verify(path, "header"), "header", "unsupported_version", "1.99")


def test_pg_restore_warning_that_no_data_will_be_available_fails_read(dumps, tmp_path):
    """pg_restore built without zlib warns and exits 0; the module must treat the warning as a failure."""
    fake = tmp_path / "bin"
    fake.mkdir()
    script = fake / "pg_restore"
    script.write_text(
        "#!/bin/sh\n"
        'echo "pg_restore: warning: archive is compressed, but this installation does not support '
        'compression -- no data will be available" >&2\n'
        "exit 0\n"
    )
    script.chmod(0o755)
    run = verify(dumps.files["custom"], "read", pg_bin_dir=str(fake))
    assert_failed(run, "read", "pg_restore_failed", "no data will be available")


# --------------------------------------------------------------------------- tar and directory


@pytest.mark.parametrize("kind", ["tar_no_blobs", "tar"])
def test_tar_archive_cut_in_half(dumps, postgres_server, tmp_path, kind):
    path = dumps.copy(kind, tmp_path)
    fx.truncate(path, path.stat().st_size // 2)
    assert fx.pg_restore(postgres_server, "-l", str(path)).returncode == 0
    if kind == "tar_no_blobs":
        # pg_restore reads it "successfully": the last table's data is cut and unterminated, no error.
        script = fx.pg_restore(postgres_server, "-f", "-", str(path))
        assert script.returncode == 0, script.stderr
        assert script.stdout.count("FROM stdin;") == script.stdout.count("\n\\.\n") + 1
        assert fx.pg_restore(postgres_server, "-f", os.devnull, str(path)).returncode == 0
    else:
        # With large objects after the cut, pg_restore -f /dev/null spins at full CPU and never returns.
        with pytest.raises(subprocess.TimeoutExpired):
            fx.pg_restore(postgres_server, "-f", os.devnull, str(path), timeout=3)
    run = verify(path, "read", pg_bin_dir=str(postgres_server.bin_dir))
    assert_failed(run, "structure", "truncated", "inside member", "truncated")


def test_directory_archive_with_a_data_file_removed(dumps, tmp_path):
    path = dumps.copy("directory", tmp_path)
    victim = max(path.glob("*.dat.gz"), key=lambda p: p.stat().st_size)
    victim.unlink()
    assert fx.pg_restore(dumps.server, "-l", str(path)).returncode == 0
    full = fx.pg_restore(dumps.server, "-f", os.devnull, str(path))
    assert full.returncode == 1 and "could not open input file" in full.stderr, full.stderr
    run = verify(path, "read")
    assert_failed(run, "structure", "missing_member", victim.name, "public.orders")


def test_directory_archive_with_a_corrupt_data_file(dumps, postgres_server, tmp_path):
    path = dumps.copy("directory", tmp_path)
    victim = max(path.glob("*.dat.gz"), key=lambda p: p.stat().st_size)
    fx.flip_byte(victim, victim.stat().st_size // 2)
    assert fx.pg_restore(postgres_server, "-l", str(path)).returncode == 0
    full = fx.pg_restore(postgres_server, "-f", os.devnull, str(path))
    assert full.returncode == 1 and "incorrect data check" in full.stderr, full.stderr
    run = verify(path, "read", pg_bin_dir=str(postgres_server.bin_dir))
    assert_failed(run, "read", "decompression_error", victim.name)


def test_uncompressed_directory_archive_with_a_data_file_cut_short(dumps, postgres_server, tmp_path):
    path = dumps.copy("directory_z0", tmp_path)
    victim = max(path.glob("*.dat"), key=lambda p: p.stat().st_size)
    fx.truncate(victim, victim.stat().st_size // 2)
    assert fx.pg_restore(postgres_server, "-l", str(path)).returncode == 0
    assert fx.pg_restore(postgres_server, "-f", os.devnull, str(path)).returncode == 0
    run = verify(path, "read", pg_bin_dir=str(postgres_server.bin_dir))
    assert_failed(run, "structure", "truncated", "end marker")


# --------------------------------------------------------------------------- plain SQL


def test_plain_sql_cut_in_half(dumps, tmp_path):
    path = tmp_path / "half.sql"
    data = dumps.files["plain"].read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert_failed(verify(path, "read"), "structure", "truncated", "cut short")


def test_gzip_plain_sql_cut_before_compression(dumps, tmp_path):
    path = fx.half_then_gzip(dumps.files["plain"], tmp_path / "half.sql.gz")
    assert subprocess.run(["gzip", "-t", str(path)], capture_output=True).returncode == 0
    run = verify(path, "read")
    assert_failed(run, "structure", "truncated", "cut short")
    assert run["format"] == "plain_gzip"


def test_plain_sql_without_the_completion_trailer(dumps, tmp_path):
    """Cut after the last COPY block: every table is complete, only the trailer tells."""
    data = dumps.files["plain"].read_bytes()
    path = tmp_path / "no-trailer.sql.gz"
    import gzip

    path.write_bytes(gzip.compress(data[: data.index(b"-- PostgreSQL database dump complete")]))
    assert_failed(verify(path, "structure"), "structure", "truncated", "-- PostgreSQL database dump complete")


def test_gzip_file_cut_after_compression(dumps, tmp_path):
    path = dumps.copy("plain_gzip", tmp_path)
    fx.truncate(path, path.stat().st_size // 2)
    assert_failed(verify(path, "read"), "structure", "truncated", "gzip stream")


def test_plain_sql_with_connect_is_not_restored(dumps, postgres_server):
    run = verify(dumps.created_plain, "restore", **fx.login_args(postgres_server))
    assert_failed(run, "restore", "unsafe_sql", "\\connect")
    assert run["levels_passed"] == ["header", "structure", "read", "content"]
    assert run["database"] == fx.SOURCE_DB
    assert fx.scratch_databases(postgres_server) == []


# --------------------------------------------------------------------------- content


def test_valid_dump_of_another_database_fails_expect_tables(dumps):
    run = verify(
        dumps.other, "content", expect_tables=["public.orders", "customers"], pg_bin_dir=str(dumps.server.bin_dir)
    )
    assert_failed(run, "content", "missing_table", "public.orders", "public.customers", fx.OTHER_DB, "public.invoices")
    ok = verify(dumps.files["custom"], "content", expect_tables=["public.orders", "audit.Event Log"])
    assert not ok.failed, ok.msg
    assert ok["verified"]["expect_tables"] == 2


def test_expected_table_without_rows(dumps):
    run = verify(dumps.files["directory"], "content", expect_tables=["public.empty_table"])
    assert_failed(run, "content", "empty_table", "public.empty_table")


def test_manifest_row_count_mismatch(dumps, tmp_path):
    counts = {**dumps.counts, "public.orders": 4001, "public.gone": 5}
    manifest = dumps.manifest("tar", tmp_path, tables=counts)
    run = verify(dumps.files["tar"], "content", manifest=str(manifest), pg_bin_dir=str(dumps.server.bin_dir))
    assert_failed(run, "content", "row_count_mismatch", "public.orders: expected 4001 rows, found 4000 rows")
    assert {"table": "public.gone", "expected": 5, "actual": None} in run["mismatches"]


def test_manifest_of_another_format(dumps, tmp_path):
    manifest = dumps.manifest("custom", tmp_path, format="directory")
    assert_failed(verify(dumps.files["custom"], "header", manifest=str(manifest)), "header", "format_mismatch")


def test_invalid_manifest_and_checksum_are_refused_before_reading(dumps, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    run = verify(dumps.files["custom"], "header", manifest=str(bad))
    assert run.failed and run["reason"] == "manifest_invalid" and run["failed_level"] is None
    run = verify(dumps.files["custom"], "header", checksum="abc")
    assert run.failed and run["reason"] == "invalid_argument"


# --------------------------------------------------------------------------- not archives


def test_missing_path(tmp_path):
    run = verify(tmp_path / "nothing.dump", "header")
    assert_failed(run, "header", "not_found", "does not exist")
    assert run["level_reached"] is None


def test_empty_file(tmp_path):
    path = tmp_path / "empty.dump"
    path.write_bytes(b"")
    assert_failed(verify(path, "header"), "header", "empty", "0 bytes")


@pytest.mark.parametrize(
    "content",
    [b'{"not": "a dump"}\n', os.urandom(4096), b"-- just a comment\nSELECT 1;\n"],
    ids=["json", "random-bytes", "sql-comment"],  # stable ids: xdist workers must collect the same tests
)
def test_not_an_archive(tmp_path, content):
    path = tmp_path / "backup.dump"
    path.write_bytes(content)
    assert_failed(verify(path, "header"), "header", "not_an_archive")


# --------------------------------------------------------------------------- secrets


def test_wrong_password_fails_restore_without_showing_any_password(dumps, postgres_server):
    wrong = "Wr0ng-" + postgres_server.password[::-1]
    run = verify(dumps.files["custom"], "restore", **fx.login_args(postgres_server, login_password=wrong))
    assert_failed(run, "restore", "restore_error", "password authentication failed", "scratch database")
    output = run.stdout + run.stderr + json.dumps(run.result)
    assert wrong not in output
    assert postgres_server.password not in output
    assert fx.scratch_databases(postgres_server) == []
