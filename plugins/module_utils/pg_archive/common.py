# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every pg_dump format shares: constants, the data model, the binary and TOC readers, row
counting, checksums, the manifest and the comparison of row counts (see __init__.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import zlib
from dataclasses import dataclass, field

LEVELS = ("header", "structure", "read", "content", "restore")

FORMAT_CUSTOM = "custom"
FORMAT_DIRECTORY = "directory"
FORMAT_TAR = "tar"
FORMAT_PLAIN = "plain"
FORMAT_PLAIN_GZIP = "plain_gzip"
FORMATS = (FORMAT_CUSTOM, FORMAT_DIRECTORY, FORMAT_TAR, FORMAT_PLAIN, FORMAT_PLAIN_GZIP)

# ArchiveFormat in pg_backup.h; 4 (archNull) is plain output, which has no header.
_FORMAT_CODES = {1: FORMAT_CUSTOM, 3: FORMAT_TAR, 5: FORMAT_DIRECTORY}
# pg_compress_algorithm (PostgreSQL 16+, archive version 1.15+).
_COMPRESSION_CODES = {0: "none", 1: "gzip", 2: "lz4", 3: "zstd"}
_FILE_SUFFIXES = {"gzip": ".gz", "lz4": ".lz4", "zstd": ".zst"}

# Newest archive version this parser knows (PostgreSQL 17 and 18 write 1.16).
MAX_ARCHIVE_VERSION = (1, 16)

K_OFFSET_POS_NOT_SET = 1
K_OFFSET_POS_SET = 2
K_OFFSET_NO_DATA = 3
BLK_DATA = 1
BLK_BLOBS = 3

# pg_dump ends the COPY data of every table with this (dumpTableData_copy).
COPY_END = b"\\.\n\n\n"
COPY_END_LINE = b"\\.\n"  # pg_restore's output: the marker line, without the empty lines after it
PLAIN_HEAD = b"-- PostgreSQL database dump\n"
PLAIN_TRAILER = b"-- PostgreSQL database dump complete\n"
PLAIN_CLUSTER_HEAD = b"-- PostgreSQL database cluster dump"

_READ_SIZE = 1 << 20
_MAX_LINE = 64 << 20


class VerifyError(Exception):
    """A verification failure: reason is a stable code, message says what is wrong."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass
class Header:
    format: str
    archive_version: str | None = None
    int_size: int | None = None
    off_size: int | None = None
    compression: str = "none"
    compression_level: int | None = None
    created: str | None = None
    database: str | None = None
    server_version: str | None = None
    pg_dump_version: str | None = None
    version: tuple = ()

    def as_dict(self) -> dict:
        return {
            "format": self.format,
            "archive_version": self.archive_version,
            "compression": self.compression,
            "compression_level": self.compression_level,
            "created": self.created,
            "database": self.database,
            "server_version": self.server_version,
            "pg_dump_version": self.pg_dump_version,
        }


@dataclass
class TocEntry:
    dump_id: int
    had_dumper: bool
    tag: str | None
    desc: str | None
    namespace: str | None
    copy_stmt: str | None
    data_state: int | None = None
    data_pos: int | None = None
    filename: str | None = None

    @property
    def has_data(self) -> bool:
        return self.had_dumper and self.data_state != K_OFFSET_NO_DATA

    @property
    def name(self) -> str:
        if self.desc == "TABLE DATA":
            return table_key(self.namespace, self.tag)
        return self.tag or ""

    @property
    def label(self) -> str:
        if self.desc == "TABLE DATA":
            return "table " + self.name
        if self.desc in ("BLOBS", "LARGE OBJECTS"):
            return "large objects" + (f" ({self.tag})" if self.tag not in (None, "BLOBS") else "")
        return f"{(self.desc or 'entry').lower()} {self.tag}"


@dataclass
class Member:
    """One data item of the archive: a table's rows or a group of large objects."""

    dump_id: int | None
    desc: str
    name: str
    label: str
    copy: bool
    location: str
    stored_bytes: int = 0
    data_bytes: int | None = None
    rows: int | None = None
    large_objects: int | None = None
    schema: str | None = None
    table: str | None = None
    offset: int | None = None  # custom format: where the data block starts

    @property
    def is_table(self) -> bool:
        return self.desc == "TABLE DATA"


@dataclass
class Manifest:
    path: str
    sha256: str | None = None
    tables: dict = field(default_factory=dict)
    format: str | None = None
    database: str | None = None
    size: int | None = None
    # The level the backup was verified at when it was taken ("verified": true and
    # "verification": {"level": ...}, as the backup role writes them), or None.
    verified_level: str | None = None


def table_key(namespace: str | None, name: str | None) -> str:
    """schema.table as pg_dump names it (unquoted); a table without schema is just its name."""
    return f"{namespace}.{name}" if namespace else (name or "")


def normalize_table(name: str) -> str:
    """A table name given by a user: "t" means "public.t"."""
    name = name.strip()
    return name if "." in name else "public." + name


class _Binary:
    """Sequential reader of pg_dump's integers and strings over a file object of known size."""

    def __init__(self, fh, size: int, name: str) -> None:
        self.fh = fh
        self.size = size
        self.name = name
        self.int_size = 4
        self.off_size = 8

    def tell(self) -> int:
        return self.fh.tell()

    def read(self, n: int, context: str) -> bytes:
        data = self.fh.read(n)
        if len(data) != n:
            end = self.size if self.size is not None else self.fh.tell()
            raise VerifyError(
                "truncated",
                f"{self.name} ends at byte {end}, in the middle of {context}: it is truncated",
            )
        return data

    def byte(self, context: str) -> int:
        return self.read(1, context)[0]

    def int(self, context: str) -> int:
        raw = self.read(1 + self.int_size, context)
        value = int.from_bytes(raw[1:], "little")
        return -value if raw[0] else value

    def str(self, context: str) -> str | None:
        length = self.int(context)
        if length < 0:
            return None
        if self.size is not None and length > self.size - self.tell():
            raise VerifyError(
                "truncated",
                f"{self.name} ends at byte {self.size}, in the middle of {context} (a {length}-byte string "
                f"starts at byte {self.tell()}): it is truncated or its TOC is corrupt",
            )
        return self.read(length, context).decode("utf-8", "replace")

    def offset(self, context: str) -> tuple:
        flag = self.byte(context)
        value = int.from_bytes(self.read(self.off_size, context), "little")
        return flag, value


class GrowingFile:
    """Forward reads of a file another process is still writing (pg_dump's output).

    read(n) waits for n bytes while writer_running() is true; once the writer has finished it
    returns what is left, fewer bytes at the end, as a finished file does. Every byte returned is
    also handed to tap, in order (for a second reader on a pipe). No seek.
    """

    def __init__(self, path: str, writer_running, tap=None, poll: float = 0.02) -> None:
        self.path = path
        self.writer_running = writer_running
        self.tap = tap
        self.poll = poll
        self.fh = None
        self.buf = bytearray()
        self.pos = 0

    def __enter__(self) -> GrowingFile:
        while self.fh is None:
            running = self.writer_running()
            try:
                self.fh = open(self.path, "rb", buffering=0)  # noqa: SIM115 closed in __exit__
            except FileNotFoundError:
                if not running:
                    raise VerifyError("missing", f"{self.path} was never written") from None
                time.sleep(self.poll)
        return self

    def __exit__(self, *exc_info) -> None:
        if self.fh is not None:
            self.fh.close()

    def tell(self) -> int:
        return self.pos

    def read(self, n: int) -> bytes:
        while len(self.buf) < n:
            # Asked before reading: a writer found finished here has written all it will.
            running = self.writer_running()
            chunk = self.fh.read(max(_READ_SIZE, n - len(self.buf)))
            if chunk:
                self.buf += chunk
            elif running:
                time.sleep(self.poll)
            else:
                break
        data = bytes(self.buf[:n])
        del self.buf[:n]
        self.pos += len(data)
        if self.tap is not None and data:
            self.tap(data)
        return data


class _Counter:
    """Bytes, lines and the last bytes of one data stream; knows pg_dump's COPY end marker."""

    def __init__(self) -> None:
        self.bytes = 0
        self.newlines = 0
        self.tail = b""

    def feed(self, data: bytes) -> None:
        if data:
            self.bytes += len(data)
            self.newlines += data.count(b"\n")
            self.tail = (self.tail + data[-8:])[-8:]

    @property
    def copy_terminated(self) -> bool:
        if self.bytes == len(COPY_END):
            return self.tail == COPY_END
        return self.tail.endswith(b"\n" + COPY_END)

    @property
    def copy_rows(self) -> int:
        # The end marker is three lines: "\." and two empty lines.
        return self.newlines - 3


class RestoreOutputCounter:
    """Rows of every COPY block in the SQL that ``pg_restore -a -f -`` writes, counted as it streams.

    With -a pg_restore writes no DDL, so outside a block only its own lines appear (SET, comments,
    sequence values, large objects): no function body can hold a line that looks like a COPY. A
    block starts with the entry's COPY statement (more than one line when a quoted name holds a
    newline) and ends with the end marker line (\\.); every line in between is one row, because
    COPY text escapes newlines and backslashes inside values.
    feed() takes the output in pieces of any size; finish() says whether it ended outside a block.
    blocks holds [COPY statement, rows, bytes] in output order (bytes: the rows and the marker).
    """

    def __init__(self) -> None:
        self.blocks: list = []
        self.current: list | None = None
        self.tail = b""  # in a block: its last (at most 3) bytes, b"\n" at its start
        self.line = b""  # outside a block: the line read so far
        self.statement = b""  # a COPY statement whose quoted name holds a newline, so far

    def feed(self, data: bytes) -> None:
        pos = 0
        while pos < len(data):
            pos = self._in_block(data, pos) if self.current is not None else self._outside(data, pos)

    def _in_block(self, data: bytes, pos: int) -> int:
        joined = self.tail + data[pos:]
        start = len(self.tail)
        at = joined.find(b"\n" + COPY_END_LINE)
        if at < 0:
            self.current[1] += joined.count(b"\n", start)
            self.current[2] += len(joined) - start
            self.tail = joined[-3:]
            return len(data)
        end = at + 1 + len(COPY_END_LINE)  # just past the marker line
        self.current[1] += joined.count(b"\n", start, at + 1)
        self.current[2] += end - start
        self.current = None
        self.tail = b""
        return pos + end - start

    def _outside(self, data: bytes, pos: int) -> int:
        nl = data.find(b"\n", pos)
        if nl < 0:
            self.line += data[pos:]
            if len(self.line) > _MAX_LINE:
                raise VerifyError("corrupt", f"pg_restore wrote a line longer than {_MAX_LINE} bytes outside COPY data")
            return len(data)
        line = self.line + data[pos:nl]
        self.line = b""
        if self.statement:
            # A quoted identifier may hold a newline: the statement goes on to its FROM stdin.
            line = self.statement + b"\n" + line
            self.statement = b""
        if line.startswith(b"COPY "):
            if line.endswith(b" FROM stdin;"):
                self.current = [line.decode("utf-8", "replace"), 0, 0]
                self.blocks.append(self.current)
                self.tail = b"\n"
            elif len(line) <= _MAX_LINE:
                self.statement = line
        return nl + 1

    def finish(self) -> list:
        if self.current is not None or self.statement:
            if self.current is None:
                self.current = [self.statement.decode("utf-8", "replace"), 0, 0]
            raise VerifyError(
                "truncated",
                f"pg_restore's output ends inside the COPY data of {self.current[0]!r} "
                f"after {self.current[1]} rows, without the end marker (\\.): the data is cut short",
            )
        return self.blocks


class _Inflater:
    """Streaming decompression of one member: zlib streams in custom archives, gzip files elsewhere.

    Output goes to a sink in pieces of at most _READ_SIZE * 16 bytes, so a highly compressed member
    never has to fit in memory.
    """

    def __init__(self, algorithm: str, container: str, label: str) -> None:
        if algorithm not in ("none", "gzip"):
            raise VerifyError(
                "unsupported_compression",
                f"the data of {label} is compressed with {algorithm}, which this module cannot read "
                "(it reads uncompressed and gzip data)",
            )
        self.wbits = zlib.MAX_WBITS | 16 if container == "gzip" else zlib.MAX_WBITS
        self.container = container
        self.label = label
        self.obj = zlib.decompressobj(self.wbits) if algorithm == "gzip" else None

    def feed(self, data: bytes, where: str, sink) -> None:
        if self.obj is None:
            sink(data)
            return
        try:
            while data:
                if self.obj.eof:
                    if self.container != "gzip":
                        raise VerifyError(
                            "corrupt",
                            f"{where}: there are bytes after the end of the compressed data of {self.label}",
                        )
                    # A gzip file may hold several members.
                    self.obj = zlib.decompressobj(self.wbits)
                sink(self.obj.decompress(data, _READ_SIZE * 16))
                data = self.obj.unused_data if self.obj.eof else self.obj.unconsumed_tail
        except zlib.error as exc:
            raise VerifyError(
                "decompression_error",
                f"{where}: the data of {self.label} cannot be decompressed ({exc}): it is corrupt",
            ) from None

    def finish(self, where: str, sink) -> None:
        if self.obj is None:
            return
        try:
            sink(self.obj.flush())
        except zlib.error as exc:
            raise VerifyError(
                "decompression_error", f"{where}: the data of {self.label} cannot be decompressed ({exc})"
            ) from None
        if not self.obj.eof:
            raise VerifyError(
                "truncated",
                f"{where}: the compressed data of {self.label} ends before the end of its "
                f"{'gzip' if self.container == 'gzip' else 'zlib'} stream: it is truncated",
            )


def _parse_header(r: _Binary, expected_format: str) -> Header:
    magic = r.read(5, "the header")
    if magic != b"PGDMP":
        raise VerifyError("not_an_archive", f"{r.name} does not start with pg_dump's magic string PGDMP")
    vmaj = r.byte("the header")
    vmin = r.byte("the header")
    vrev = r.byte("the header") if (vmaj > 1 or (vmaj == 1 and vmin > 0)) else 0
    version = (vmaj, vmin, vrev)
    archive_version = f"{vmaj}.{vmin}-{vrev}"
    if vmaj != 1 or (vmaj, vmin) > MAX_ARCHIVE_VERSION:
        raise VerifyError(
            "unsupported_version",
            f"{r.name} has archive version {archive_version}; this module reads versions 1.0 to "
            f"{MAX_ARCHIVE_VERSION[0]}.{MAX_ARCHIVE_VERSION[1]} (pg_dump up to PostgreSQL 18)",
        )
    int_size = r.byte("the header")
    if not 1 <= int_size <= 8:
        raise VerifyError("corrupt", f"{r.name} declares an integer size of {int_size} bytes: its header is corrupt")
    r.int_size = int_size
    off_size = r.byte("the header") if version >= (1, 7, 0) else int_size
    if not 1 <= off_size <= 8:
        raise VerifyError("corrupt", f"{r.name} declares an offset size of {off_size} bytes: its header is corrupt")
    r.off_size = off_size
    fmt_code = r.byte("the header")
    fmt = _FORMAT_CODES.get(fmt_code)
    if expected_format == FORMAT_DIRECTORY and fmt == FORMAT_TAR:
        # pg_dump writes "tar" into a directory archive's toc.dat: the layouts are compatible.
        fmt = FORMAT_DIRECTORY
    if fmt != expected_format:
        found = fmt or f"unknown ({fmt_code})"
        raise VerifyError(
            "corrupt" if fmt is None else "not_an_archive",
            f"{r.name} says its format is {found}, but it was found as a {expected_format} archive",
        )
    header = Header(format=fmt, archive_version=archive_version, int_size=int_size, off_size=off_size, version=version)
    if version >= (1, 15, 0):
        code = r.byte("the header")
        if code not in _COMPRESSION_CODES:
            raise VerifyError("corrupt", f"{r.name} names an unknown compression algorithm ({code})")
        header.compression = _COMPRESSION_CODES[code]
    elif version >= (1, 2, 0):
        level = r.byte("the header") if version < (1, 4, 0) else r.int("the header")
        header.compression_level = level
        header.compression = "none" if level == 0 else "gzip"
    else:
        header.compression = "gzip"
    if version >= (1, 4, 0):
        tm = [r.int("the creation time") for _field in range(7)]
        sec, minute, hour, mday, mon, year = tm[:6]
        if 0 <= mon <= 11 and 1 <= mday <= 31 and 0 <= hour <= 23 and 0 <= minute <= 59 and 0 <= sec <= 61:
            header.created = f"{year + 1900:04d}-{mon + 1:02d}-{mday:02d} {hour:02d}:{minute:02d}:{sec:02d}"
        header.database = r.str("the database name")
    if version >= (1, 10, 0):
        header.server_version = r.str("the server version")
        header.pg_dump_version = r.str("the pg_dump version")
    return header


def _parse_toc(r: _Binary, header: Header, read_extra) -> list:
    version = header.version
    count = r.int("the TOC")
    if count < 0 or (r.size is not None and count > r.size):
        raise VerifyError("corrupt", f"{r.name} declares {count} TOC entries: its TOC is corrupt")
    entries = []
    for i in range(count):
        context = f"TOC entry {i + 1} of {count}"
        dump_id = r.int(context)
        if dump_id <= 0:
            raise VerifyError("corrupt", f"{r.name}: {context} has ID {dump_id}: the TOC is corrupt")
        had_dumper = r.int(context) != 0
        if version >= (1, 8, 0):
            r.str(context)  # table OID
        r.str(context)  # OID
        tag = r.str(context)
        desc = r.str(context)
        if version >= (1, 11, 0):
            r.int(context)  # section
        r.str(context)  # definition
        r.str(context)  # drop statement
        copy_stmt = r.str(context) if version >= (1, 3, 0) else None
        namespace = r.str(context) if version >= (1, 6, 0) else None
        if version >= (1, 10, 0):
            r.str(context)  # tablespace
        if version >= (1, 14, 0):
            r.str(context)  # table access method
        if version >= (1, 16, 0):
            r.int(context)  # relkind
        r.str(context)  # owner
        if version >= (1, 9, 0):
            r.str(context)  # "false": tables WITH OIDS are gone
        if version >= (1, 5, 0):
            while r.str(context) is not None:  # dependencies, ended by NULL
                pass
        entry = TocEntry(dump_id, had_dumper, tag, desc, namespace, copy_stmt)
        read_extra(r, entry, context)
        entries.append(entry)
    return entries


def _some(names: list, limit: int = 5) -> str:
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def _data_entries(entries: list) -> list:
    return [e for e in entries if e.has_data]


def _member_for(entry: TocEntry, location: str) -> Member:
    return Member(
        dump_id=entry.dump_id,
        desc=entry.desc or "",
        name=entry.name,
        label=entry.label,
        copy=bool(entry.copy_stmt),
        location=location,
        schema=entry.namespace if entry.desc == "TABLE DATA" else None,
        table=entry.tag if entry.desc == "TABLE DATA" else None,
    )


def _check_copy_end(member: Member, counter: _Counter, where: str) -> None:
    member.data_bytes = counter.bytes
    if member.copy:
        if not counter.copy_terminated:
            raise VerifyError(
                "truncated",
                f"{where}: the COPY data of {member.label} does not end with pg_dump's end marker (\\.): "
                "it is cut short",
            )
        member.rows = counter.copy_rows


def _member_candidates(name: str | None, archive: str, label: str, compression: str) -> list:
    """The names pg_restore tries for a data item: NAME plus the compression suffix, then NAME."""
    name = _safe_member_name(name, archive, label)
    suffix = _FILE_SUFFIXES.get(compression)
    return [name + suffix, name] if suffix and not name.endswith(suffix) else [name]


def _safe_member_name(name: str | None, archive: str, label: str) -> str:
    if not name or "/" in name or name in (".", "..") or "\0" in name:
        raise VerifyError("corrupt", f"{archive} names an invalid data file {name!r} for {label}")
    return name


class Archive:
    """Common interface: header(), structure(), read(), sha256(); members and toc after structure()."""

    format = ""

    def __init__(self, path: str) -> None:
        self.path = path
        self.header_info: Header | None = None
        self.toc: list = []
        self.members: list = []
        self.size = 0
        self._sha256: str | None = None

    # header() -> Header; structure() -> [Member]; read() -> [Member] with rows and sizes.

    def tables(self) -> dict:
        return {m.name: m.rows for m in self.members if m.is_table}

    def large_objects(self) -> int:
        return sum(m.large_objects or 0 for m in self.members)

    def data_bytes(self) -> int | None:
        if any(m.data_bytes is None for m in self.members):
            return None
        return sum(m.data_bytes for m in self.members)

    def sha256(self) -> str:
        if self._sha256 is None:
            self._sha256 = file_sha256(self.path)
        return self._sha256


def _head_of(path: str, compressed: bool, size: int) -> bytes:
    with open(path, "rb") as fh:
        raw = fh.read(size if not compressed else size)
    if not compressed:
        return raw
    try:
        return zlib.decompressobj(zlib.MAX_WBITS | 16).decompress(raw, size)
    except zlib.error as exc:
        raise VerifyError("decompression_error", f"{path}: cannot decompress its start ({exc})") from None


def _parse_blob_list(text: str, where: str) -> list:
    names = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(" ", 1)
        if len(parts) != 2 or not parts[0].isdigit():
            raise VerifyError(
                "corrupt", f"{where} line {number} is not '<oid> <file>': the large object list is corrupt"
            )
        names.append(parts[1].strip())
    return names


def _read_stream(fh, size: int, compression: str, member: Member, where: str) -> _Counter:
    inflater = _Inflater(compression, "gzip", member.label)
    counter = _Counter()
    remaining = size
    while remaining > 0:
        data = fh.read(min(_READ_SIZE, remaining))
        if not data:
            raise VerifyError("truncated", f"{where} ends early while reading the data of {member.label}")
        remaining -= len(data)
        inflater.feed(data, where, counter.feed)
    inflater.finish(where, counter.feed)
    return counter


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb", buffering=0) as fh:
        while True:
            chunk = fh.read(_READ_SIZE)
            if not chunk:
                break
            digest.update(chunk)
    return digest.hexdigest()


def directory_sha256(path: str) -> str:
    """sha256 of the sha256sum listing of the directory's files, sorted by name (bytewise).

    The same as `cd DIR && LC_ALL=C sha256sum * | sha256sum`.
    """
    names = sorted(
        (n for n in os.listdir(path) if os.path.isfile(os.path.join(path, n))),
        key=lambda n: n.encode("utf-8", "surrogateescape"),
    )
    listing = "".join(f"{file_sha256(os.path.join(path, n))}  {n}\n" for n in names)
    return hashlib.sha256(listing.encode("utf-8", "surrogateescape")).hexdigest()


_SHA256_RE = re.compile(r"^(?:sha256:)?([0-9a-f]{64})$", re.IGNORECASE)


def normalize_sha256(value: str, where: str) -> str:
    match = _SHA256_RE.match(value.strip()) if isinstance(value, str) else None
    if not match:
        raise VerifyError("manifest_invalid", f"{where} is not a sha256 (64 hexadecimal digits): {value!r}")
    return match.group(1).lower()


def load_manifest(path: str) -> Manifest:
    """The manifest beside a backup: {"sha256": ..., "tables": {"schema.table": rows}, "format": ..., ...}."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        raise VerifyError("manifest_invalid", f"manifest {path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise VerifyError("manifest_invalid", f"manifest {path} cannot be read as JSON: {exc}") from None
    if not isinstance(data, dict):
        raise VerifyError("manifest_invalid", f"manifest {path} is not a JSON object")
    manifest = Manifest(path=path)
    if data.get("sha256") is not None:
        manifest.sha256 = normalize_sha256(data["sha256"], f"manifest {path} key sha256")
    tables = data.get("tables")
    if tables is not None:
        if not isinstance(tables, dict):
            raise VerifyError("manifest_invalid", f"manifest {path}: tables must map schema.table to a row count")
        for name, rows in tables.items():
            if isinstance(rows, bool) or not isinstance(rows, int) or rows < 0:
                raise VerifyError(
                    "manifest_invalid",
                    f"manifest {path}: the row count of {name} is not a non-negative integer: {rows!r}",
                )
            manifest.tables[normalize_table(name)] = rows
    if data.get("format") is not None:
        if data["format"] not in FORMATS:
            raise VerifyError(
                "manifest_invalid",
                f"manifest {path}: format {data['format']!r} is not one of {', '.join(FORMATS)}",
            )
        manifest.format = data["format"]
    if data.get("database") is not None:
        manifest.database = str(data["database"])
    if data.get("size") is not None:
        if isinstance(data["size"], bool) or not isinstance(data["size"], int):
            raise VerifyError("manifest_invalid", f"manifest {path}: size must be an integer (bytes)")
        manifest.size = data["size"]
    verification = data.get("verification")
    if data.get("verified") is True and isinstance(verification, dict) and verification.get("level") in LEVELS:
        manifest.verified_level = verification["level"]
    return manifest


def compare_counts(actual: dict, expected: dict) -> list:
    """[{table, expected, actual}] for every table of expected whose count differs (actual None: absent)."""
    out = []
    for name in sorted(expected):
        if actual.get(name) != expected[name]:
            out.append({"table": name, "expected": expected[name], "actual": actual.get(name)})
    return out


def describe_mismatches(mismatches: list, limit: int = 5) -> str:
    parts = []
    for item in mismatches[:limit]:
        actual = "absent" if item["actual"] is None else f"{item['actual']} rows"
        parts.append(f"{item['table']}: expected {item['expected']} rows, found {actual}")
    more = f" and {len(mismatches) - limit} more" if len(mismatches) > limit else ""
    return "; ".join(parts) + more
