"""module_utils/pg_archive without Ansible, against the archives pg_dump_fixtures makes with the real pg_dump."""

from __future__ import annotations

import gzip
import hashlib
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/unit/plugins: pg_dump_fixtures
import pg_dump_fixtures as fx  # noqa: E402
from ansible_collections.opsbook.webstack.plugins.module_utils import pg_archive as pa  # noqa: E402
from ansible_collections.opsbook.webstack.plugins.module_utils.pg_archive import common as pa_common  # noqa: E402


@pytest.fixture(scope="session")
def dumps(postgres_server, tmp_path_factory):
    return fx.build_dumps(postgres_server, tmp_path_factory.mktemp("pg-dumps"))


def _reason(path, *steps) -> str | None:
    """The reason the first failing step raised, or None when all passed."""
    try:
        archive = pa.open_archive(str(path))
        archive.header()
        for step in steps:
            getattr(archive, step)()
    except pa.VerifyError as exc:
        return exc.reason
    return None


@pytest.mark.parametrize("kind", list(fx.KINDS))
def test_format_header_and_row_counts_of_every_kind(dumps, kind):
    archive = pa.open_archive(str(dumps.files[kind]))
    assert archive.format == fx.FORMAT_OF[kind]
    header = archive.header()
    assert header.format == fx.FORMAT_OF[kind]
    assert header.pg_dump_version.startswith("15.")
    assert header.server_version.startswith("15.")
    structure = archive.structure()
    assert {m.name for m in structure if m.is_table} == set(dumps.counts)
    archive.read()
    assert archive.tables() == dumps.counts
    if archive.format in ("custom", "directory", "tar"):
        assert header.database == fx.SOURCE_DB
        assert header.archive_version == "1.14-0"
        assert archive.large_objects() == (0 if kind == "tar_no_blobs" else 2)
        # Rows are counted when the data is read, not by the structure walk.
        assert all(m.rows is None for m in structure if m.is_table)


def test_toc_matches_pg_restore_listing(dumps, postgres_server):
    archive = pa.open_archive(str(dumps.files["custom"]))
    archive.structure()
    listing = fx.pg_restore(postgres_server, "-l", str(dumps.files["custom"])).stdout
    fields = dict(
        line[1:].strip().split(": ", 1) for line in listing.splitlines() if line.startswith(";") and ": " in line
    )
    header = archive.header_info
    assert int(fields["TOC Entries"]) == len(archive.toc)
    assert fields["Dump Version"] == header.archive_version
    assert fields["dbname"] == header.database
    assert fields["Dumped by pg_dump version"] == header.pg_dump_version
    # pg_restore prints the creation time in its own time zone (UTC in the test environment).
    assert listing.splitlines()[1] == f"; Archive created at {header.created} UTC"


def test_custom_archive_truncated_anywhere_after_the_toc(dumps, tmp_path):
    """Every cut (evenly spaced, and at and just after every block start) is found by the structure walk."""
    source = dumps.files["custom"]
    data = source.read_bytes()
    archive = pa.open_archive(str(source))
    members = archive.structure()
    starts = [m.offset for m in members]
    cuts = sorted(
        {archive.data_start + i * (len(data) - archive.data_start) // 40 for i in range(40)}
        | set(starts)
        | {s + 1 for s in starts}
        | {len(data) - 1}
    )
    path = tmp_path / "cut.dump"
    for cut in cuts:
        path.write_bytes(data[:cut])
        assert _reason(path, "structure") == "truncated", cut


def test_custom_archive_truncated_inside_the_toc(dumps, tmp_path):
    data = dumps.files["custom"].read_bytes()
    path = tmp_path / "cut.dump"
    for cut in (20, 200, 2000):
        path.write_bytes(data[:cut])
        assert _reason(path, "structure") == "truncated", cut


def test_flipped_bytes_in_compressed_custom_data_never_pass(dumps, tmp_path):
    source = dumps.files["custom"]
    data = source.read_bytes()
    archive = pa.open_archive(str(source))
    archive.structure()
    rng = random.Random(15)
    path = tmp_path / "flipped.dump"
    for offset in rng.sample(range(archive.data_start, len(data)), 40):
        damaged = bytearray(data)
        damaged[offset] ^= 1 << rng.randrange(8)
        path.write_bytes(bytes(damaged))
        assert _reason(path, "structure", "read") is not None, offset


def test_uncompressed_data_change_is_invisible_but_the_sha256_differs(dumps, tmp_path):
    path = dumps.copy("directory_z0", tmp_path)
    victim = max(path.glob("*.dat"), key=lambda p: p.stat().st_size)
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] = ord("0") if data[len(data) // 2] != ord("0") else ord("1")
    victim.write_bytes(bytes(data))
    assert _reason(path, "structure", "read") is None
    assert pa.directory_sha256(str(path)) != pa.directory_sha256(str(dumps.files["directory_z0"]))


def test_directory_sha256_is_sha256sum_of_the_listing(dumps):
    path = dumps.files["directory"]
    shell = subprocess.run(
        "LC_ALL=C sha256sum * | sha256sum", shell=True, cwd=path, capture_output=True, text=True, check=True
    )
    assert pa.directory_sha256(str(path)) == shell.stdout.split()[0]
    assert pa.file_sha256(str(dumps.files["custom"])) == hashlib.sha256(dumps.files["custom"].read_bytes()).hexdigest()


@pytest.mark.parametrize("read_size", [3, 7, 64, 4096])
def test_plain_scan_across_read_boundaries(dumps, monkeypatch, read_size):
    """COPY end markers and lines split between reads are still found."""
    monkeypatch.setattr(pa_common, "_READ_SIZE", read_size)
    for kind in ("plain", "plain_gzip"):
        archive = pa.open_archive(str(dumps.files[kind]))
        archive.header()
        archive.read()
        assert archive.tables() == dumps.counts


def test_plain_sql_facts(dumps):
    archive = pa.open_archive(str(dumps.files["plain"]))
    header = archive.header()
    assert header.database is None  # only with --create
    archive.structure()
    assert archive.meta_commands == []
    created = pa.open_archive(str(dumps.created_plain))
    assert created.header().database == fx.SOURCE_DB
    created.structure()
    assert any("\\connect" in c for c in created.meta_commands)


def test_unsupported_compression_passes_structure_then_fails_read(dumps, tmp_path):
    """A 1.15 header (PostgreSQL 16) naming lz4: the block framing is the same, the data is unreadable here.

    The archive written through a pipe has no data offsets, which the 4 bytes removed here would shift.
    """
    data = dumps.files["custom_pipe"].read_bytes()
    # 1.14 stores the compression level as an int (sign byte + 4 bytes) at offset 11; 1.15 a single byte.
    forged = data[:6] + bytes([15]) + data[7:11] + bytes([2]) + data[16:]
    path = tmp_path / "lz4.dump"
    path.write_bytes(forged)
    archive = pa.open_archive(str(path))
    assert archive.header().compression == "lz4"
    archive.structure()
    with pytest.raises(pa.VerifyError) as info:
        archive.read()
    assert info.value.reason == "unsupported_compression"
    assert "lz4" in info.value.message


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda d, t: t / "missing", "not_found"),
        (lambda d, t: _write(t / "empty", b""), "empty"),
        (lambda d, t: d.files["directory"] / "toc.dat", "not_an_archive"),
        (lambda d, t: _mkdir(t / "not-an-archive-dir"), "not_an_archive"),
        (lambda d, t: _write(t / "c.dump.gz", gzip.compress(d.files["custom"].read_bytes())), "not_an_archive"),
        (lambda d, t: _write(t / "all.sql", b"--\n-- PostgreSQL database cluster dump\n--\n"), "not_an_archive"),
        (lambda d, t: _write(t / "x.gz", gzip.compress(b"hello")), "not_an_archive"),
    ],
    ids=["missing", "empty", "toc.dat", "plain-directory", "gzipped-custom", "pg_dumpall", "gzip-of-text"],
)
def test_what_is_not_an_archive(dumps, tmp_path, make, reason):
    assert _reason(make(dumps, tmp_path)) == reason


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _mkdir(path: Path) -> Path:
    path.mkdir()
    (path / "3001.dat").write_text("x")
    return path


def test_manifest_loading(tmp_path):
    path = tmp_path / "m.json"
    path.write_text(
        json.dumps(
            {
                "id": "x",
                "sha256": "SHA256:" + "AB" * 32,
                "tables": {"orders": 3, "audit.log": 0},
                "format": "tar",
                "size": 10,
            }
        )
    )
    manifest = pa.load_manifest(str(path))
    assert manifest.sha256 == "ab" * 32
    assert manifest.tables == {"public.orders": 3, "audit.log": 0}
    assert (manifest.format, manifest.size, manifest.database) == ("tar", 10, None)
    for bad in (
        "{",
        "[]",
        '{"sha256": "abc"}',
        '{"tables": {"t": -1}}',
        '{"tables": {"t": true}}',
        '{"format": "zip"}',
    ):
        path.write_text(bad)
        with pytest.raises(pa.VerifyError) as info:
            pa.load_manifest(str(path))
        assert info.value.reason == "manifest_invalid"
    with pytest.raises(pa.VerifyError):
        pa.load_manifest(str(tmp_path / "absent.json"))


def test_compare_and_describe():
    mismatches = pa.compare_counts({"a.t": 1, "a.u": 2}, {"a.t": 1, "a.u": 3, "a.v": 4})
    assert mismatches == [
        {"table": "a.u", "expected": 3, "actual": 2},
        {"table": "a.v", "expected": 4, "actual": None},
    ]
    assert (
        pa.describe_mismatches(mismatches) == "a.u: expected 3 rows, found 2 rows; a.v: expected 4 rows, found absent"
    )


def test_copy_end_marker():
    counter = pa._Counter()
    counter.feed(pa.COPY_END)
    assert counter.copy_terminated and counter.copy_rows == 0
    counter = pa._Counter()
    for piece in (b"1\ta\n2\tb", b"\n\\.", b"\n\n\n"):
        counter.feed(piece)
    assert counter.copy_terminated and counter.copy_rows == 2
    counter = pa._Counter()
    counter.feed(b"1\ta\n2\tb\n")
    assert not counter.copy_terminated


def _restore_output(server, path) -> bytes:
    """What `pg_restore -a -f -` writes for the archive: the SQL the backup's verification counts."""
    return subprocess.run(
        [server.bin("pg_restore"), "-a", "-f", "-", str(path)], capture_output=True, check=True, timeout=60
    ).stdout


@pytest.mark.parametrize("piece", [1, 2, 3, 5, 4096, None])
def test_rows_counted_in_pg_restore_output_match_the_archive(dumps, postgres_server, piece):
    """Values with newlines, tabs and backslashes, a quoted name, an empty table and large objects,
    fed in pieces of every size: the counts equal those of the source database."""
    output = _restore_output(postgres_server, dumps.files["custom"])
    counter = pa.RestoreOutputCounter()
    step = piece or len(output)
    for at in range(0, len(output), step):
        counter.feed(output[at : at + step])
    archive = pa.CustomArchive(str(dumps.files["custom"]))
    archive.structure()
    archive.take_restore_counts(counter.finish())
    assert archive.tables() == dumps.counts
    assert all(m.data_bytes > 0 for m in archive.members if m.is_table)


def test_restore_output_counter_is_not_fooled_by_rows_that_look_like_markers():
    rows = [b"COPY b.t (x) FROM stdin;", b"\\\\.", b"a\\\\.", b""]
    output = (
        b"SET x = 1;\n\nCOPY a.t (x) FROM stdin;\n"
        + b"".join(row + b"\n" for row in rows)
        + b"\\.\n\n\nCOPY b.e (x) FROM stdin;\n\\.\n\n\n"
    )
    for step in (1, 3, len(output)):
        counter = pa.RestoreOutputCounter()
        for at in range(0, len(output), step):
            counter.feed(output[at : at + step])
        blocks = counter.finish()
        assert [(stmt, n) for stmt, n, _size in blocks] == [
            ("COPY a.t (x) FROM stdin;", 4),
            ("COPY b.e (x) FROM stdin;", 0),
        ]
        assert blocks[1][2] == len(b"\\.\n")


@pytest.mark.parametrize(
    "cut", [b"COPY a.t (x) FROM stdin;\n", b"COPY a.t (x) FROM stdin;\n1\n2\n", b"COPY a.t (x) FROM stdin;\n1\n\\."]
)
def test_restore_output_ending_inside_copy_data_is_truncated(cut):
    counter = pa.RestoreOutputCounter()
    counter.feed(cut)
    with pytest.raises(pa.VerifyError) as exc:
        counter.finish()
    assert exc.value.reason == "truncated" and "COPY a.t" in exc.value.message


def test_restore_counts_must_cover_every_table_and_nothing_else(dumps, postgres_server):
    counter = pa.RestoreOutputCounter()
    counter.feed(_restore_output(postgres_server, dumps.files["custom"]))
    blocks = counter.finish()
    archive = pa.CustomArchive(str(dumps.files["custom"]))
    archive.structure()
    missing = [b for b in blocks if "Event Log" not in b[0]]
    with pytest.raises(pa.VerifyError) as exc:
        archive.take_restore_counts(missing)
    assert exc.value.reason == "missing_member" and "table audit.Event Log" in exc.value.message
    with pytest.raises(pa.VerifyError) as exc:
        archive.take_restore_counts([*blocks, ["COPY public.ghost (id) FROM stdin;", 1, 2]])
    assert exc.value.reason == "corrupt" and "public.ghost" in exc.value.message


def test_rows_counted_for_a_table_whose_name_holds_a_newline(postgres_server, tmp_path):
    """A quoted name may hold a newline: its COPY statement spans two lines of pg_restore's output."""
    db = "archive_newline_name"
    postgres_server.drop_database(db)
    postgres_server.create_database(db)
    postgres_server.execute(
        'CREATE TABLE public."two\nlines" (v text);'
        'INSERT INTO public."two\nlines" SELECT g::text FROM generate_series(1, 7) g;'
        "CREATE TABLE public.plain (v int); INSERT INTO public.plain SELECT generate_series(1, 3)",
        dbname=db,
    )
    path = tmp_path / "newline.dump"
    subprocess.run(
        [postgres_server.bin("pg_dump"), "-Fc", "-f", str(path), db], check=True, env=postgres_server.env(db)
    )
    counter = pa.RestoreOutputCounter()
    counter.feed(_restore_output(postgres_server, path))
    archive = pa.CustomArchive(str(path))
    archive.structure()
    archive.take_restore_counts(counter.finish())
    assert archive.tables() == {"public.two\nlines": 7, "public.plain": 3}
    postgres_server.drop_database(db)
