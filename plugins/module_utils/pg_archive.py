# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading pg_dump output without pg_restore: format detection, header, TOC, data members, row counts.

Pure Python (standard library only): the module pg_dump_verify runs it on the managed host, and the
unit tests import it without Ansible.

The archive layout follows PostgreSQL's src/bin/pg_dump/pg_backup_archiver.c (ReadHead, ReadToc),
pg_backup_custom.c (data blocks), pg_backup_directory.c and pg_backup_tar.c (one file or tar member
per data item). Integers are a sign byte followed by int_size little-endian bytes; strings are an
integer length (-1 for NULL) followed by the bytes.

Every problem is raised as VerifyError(reason, message): reason is a stable code, message says what
is wrong in terms of the file (which table, which byte).
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

# Lines of pg_restore's stderr that mean it could not read everything.
PG_RESTORE_FAILURES = re.compile(
    r"no data will be available|could not find block id|unexpected end of file|end of file|could not read|"
    r"could not uncompress|could not open input file|corrupt|error:|fatal:",
    re.IGNORECASE,
)


class VerifyError(Exception):
    """A verification failure: reason is a stable code, message says what is wrong."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


# --------------------------------------------------------------------------- data model


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


# --------------------------------------------------------------------------- small readers


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


# --------------------------------------------------------------------------- header and TOC


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


def _safe_member_name(name: str | None, archive: str, label: str) -> str:
    if not name or "/" in name or name in (".", "..") or "\0" in name:
        raise VerifyError("corrupt", f"{archive} names an invalid data file {name!r} for {label}")
    return name


# --------------------------------------------------------------------------- archives


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


class CustomArchive(Archive):
    format = FORMAT_CUSTOM

    def __init__(self, path: str, growing: bool = False) -> None:
        """growing: the file is still being written (perhaps not yet created); only follow() then."""
        super().__init__(path)
        self.size = None if growing else os.path.getsize(path)
        self.data_start = 0

    def header(self) -> Header:
        with open(self.path, "rb") as fh:
            self.header_info = _parse_header(_Binary(fh, self.size, self.path), FORMAT_CUSTOM)
        return self.header_info

    def _read_toc(self, fh) -> _Binary:
        r = _Binary(fh, self.size, self.path)
        header = _parse_header(r, FORMAT_CUSTOM)
        self.header_info = header

        def extra(r: _Binary, entry: TocEntry, context: str) -> None:
            entry.data_state, entry.data_pos = r.offset(context)
            if header.version < (1, 7, 0):
                r.int(context)

        self.toc = _parse_toc(r, header, extra)
        self.data_start = fh.tell()
        return r

    def structure(self) -> list:
        self.members = self._walk(decode=False)
        return self.members

    def read(self) -> list:
        self.members = self._walk(decode=True)
        return self.members

    def _walk(self, decode: bool) -> list:
        with open(self.path, "rb", buffering=_READ_SIZE) as fh:
            return self._blocks(fh, decode)

    def follow(self, writer_running, tap=None, decode: bool = True) -> list:
        """read() over the file while pg_dump is still writing it: each data block is read (and,
        with decode, decompressed) as it arrives, so reading ends about when the dump does.
        Without decode only the framing is checked here: the tap's reader decompresses.

        pg_dump writes the header and the TOC (data offsets not yet set), then every data block
        in order, then seeks back and rewrites the TOC with the offsets. Blocks are never
        rewritten: what is read here is what the finished file holds. check_finished() then
        reads the finished file's header and TOC and checks every block against them.
        """
        self.size = None
        with GrowingFile(self.path, writer_running, tap) as fh:
            self.members = self._blocks(fh, decode=decode)
            self.size = fh.tell()
        return self.members

    def check_finished(self) -> CustomArchive:
        """The finished file (TOC rewritten): its structure, with the rows read by follow()."""
        final = CustomArchive(self.path)
        final.structure()
        seen = {m.dump_id: m for m in self.members}
        for member in final.members:
            read = seen.get(member.dump_id)
            if read is None or (read.offset, read.stored_bytes) != (member.offset, member.stored_bytes):
                where = "was not read" if read is None else f"was read at byte {read.offset}, {read.stored_bytes} bytes"
                raise VerifyError(
                    "corrupt",
                    f"{self.path}: the finished archive holds the data of {member.label} at byte {member.offset} "
                    f"({member.stored_bytes} bytes), but it {where} while the dump was written",
                )
            member.rows, member.data_bytes, member.large_objects = read.rows, read.data_bytes, read.large_objects
        if len(final.members) != len(self.members):
            raise VerifyError(
                "corrupt",
                f"{self.path}: {len(self.members)} data blocks were read while the dump was written, "
                f"the finished archive's TOC lists {len(final.members)}",
            )
        return final

    def take_restore_counts(self, blocks: list) -> None:
        """Rows and bytes of every table as pg_restore wrote them (RestoreOutputCounter.blocks),
        matched to the TOC's entries by their COPY statement; every table with COPY data must be
        there, and nothing else."""
        written: dict = {}
        for stmt, rows, size in blocks:
            if stmt in written:
                raise VerifyError("corrupt", f"{self.path}: pg_restore wrote the COPY data of {stmt!r} twice")
            written[stmt] = (rows, size)
        entries = {e.dump_id: e for e in _data_entries(self.toc)}
        for member in self.members:
            if not member.copy:
                continue
            got = written.pop((entries[member.dump_id].copy_stmt or "").strip(), None)
            if got is None:
                raise VerifyError("missing_member", f"{self.path}: pg_restore wrote no COPY data for {member.label}")
            member.rows, member.data_bytes = got
        if written:
            raise VerifyError(
                "corrupt", f"{self.path}: pg_restore wrote COPY data the TOC does not list: {_some(sorted(written))}"
            )

    def _end(self, fh) -> int:
        return self.size if self.size is not None else fh.tell()

    def _blocks(self, fh, decode: bool) -> list:
        """Every data block from the end of the TOC to the end of the file, in order.

        pg_restore -l reads only the header and TOC, so it cannot see any of this. A block is
        a type byte, the entry's dump ID, then chunks (length, bytes) ended by a zero length;
        a large-object block holds (OID, chunks) pairs ended by OID 0.
        """
        r = self._read_toc(fh)
        header = self.header_info
        expected = {e.dump_id: e for e in _data_entries(self.toc)}
        found = {}
        while True:
            pos = fh.tell()
            first = fh.read(1)
            if not first:
                break
            block_type = first[0]
            if block_type not in (BLK_DATA, BLK_BLOBS):
                raise VerifyError(
                    "corrupt",
                    f"{self.path}: unknown data block type {block_type} at byte {pos}: the archive is corrupt",
                )
            dump_id = r.int(f"the data block header at byte {pos}")
            entry = expected.get(dump_id)
            if entry is None or dump_id in found:
                what = "a second" if dump_id in found else "an unexpected"
                raise VerifyError(
                    "corrupt",
                    f"{self.path}: {what} data block for entry ID {dump_id} at byte {pos}: the archive is corrupt",
                )
            if entry.data_state == K_OFFSET_POS_SET and entry.data_pos != pos:
                raise VerifyError(
                    "corrupt",
                    f"{self.path}: the TOC places the data of {entry.label} at byte {entry.data_pos}, "
                    f"but its block is at byte {pos}",
                )
            member = _member_for(entry, f"byte {pos}")
            member.offset = pos
            if block_type == BLK_DATA:
                counter = _Counter()
                self._stream(r, fh, member, header.compression, counter if decode else None)
                if decode:
                    _check_copy_end(member, counter, self.path)
            else:
                member.large_objects = 0
                member.data_bytes = 0
                while True:
                    oid = r.int(f"the data of {entry.label}")
                    if oid == 0:
                        break
                    counter = _Counter()
                    self._stream(r, fh, member, header.compression, counter if decode else None)
                    member.large_objects += 1
                    member.data_bytes += counter.bytes
                if not decode:
                    member.data_bytes = None
            member.stored_bytes = fh.tell() - pos
            found[dump_id] = member
        missing = [e for e in expected.values() if e.dump_id not in found]
        if missing:
            first = missing[0]
            where = ""
            if first.data_state == K_OFFSET_POS_SET:
                where = f" (the TOC places it at byte {first.data_pos})"
            raise VerifyError(
                "truncated",
                f"{self.path} ends at byte {self._end(fh)} after {len(found)} of {len(expected)} data blocks: "
                f"no data for {_some([e.label for e in missing])}{where}; it is truncated",
            )
        return [found[e.dump_id] for e in _data_entries(self.toc)]

    def _stream(self, r: _Binary, fh, member: Member, compression: str, counter: _Counter | None) -> None:
        """One compressed (or plain) stream: chunks until a zero length."""
        inflater = _Inflater(compression, "zlib", member.label) if counter is not None else None
        context = f"the data of {member.label}"
        while True:
            length = r.int(context)
            if length == 0:
                break
            start = fh.tell()
            if length < 0 or (self.size is not None and start + length > self.size):
                raise VerifyError(
                    "truncated",
                    f"{self.path} ends at byte {self._end(fh)} inside the data of {member.label} "
                    f"(a {length}-byte chunk starts at byte {start}): it is truncated",
                )
            if inflater is None and self.size is None:
                r.read(length, context)  # a file still being written: read through (and to the tap)
            elif inflater is None:
                fh.seek(length, os.SEEK_CUR)
            else:
                inflater.feed(r.read(length, context), f"{self.path} byte {start}", counter.feed)
        if inflater is not None:
            inflater.finish(f"{self.path} byte {fh.tell()}", counter.feed)


class DirectoryArchive(Archive):
    format = FORMAT_DIRECTORY

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.toc_path = os.path.join(path, "toc.dat")
        self.size = _directory_size(path)

    def header(self) -> Header:
        with open(self.toc_path, "rb") as fh:
            self.header_info = _parse_header(
                _Binary(fh, os.path.getsize(self.toc_path), self.toc_path), FORMAT_DIRECTORY
            )
        return self.header_info

    def _read_toc(self) -> None:
        with open(self.toc_path, "rb") as fh:
            r = _Binary(fh, os.path.getsize(self.toc_path), self.toc_path)
            self.header_info = _parse_header(r, FORMAT_DIRECTORY)

            def extra(r: _Binary, entry: TocEntry, context: str) -> None:
                entry.filename = r.str(context)

            self.toc = _parse_toc(r, self.header_info, extra)
            if fh.read(1):
                raise VerifyError("corrupt", f"{self.toc_path} has bytes after the end of its TOC: it is corrupt")

    def _data_file(self, name: str, label: str) -> str:
        """pg_restore opens NAME, or NAME plus the compression suffix."""
        name = _safe_member_name(name, self.path, label)
        candidates = [name]
        suffix = _FILE_SUFFIXES.get(self.header_info.compression)
        if suffix and not name.endswith(suffix):
            candidates.insert(0, name + suffix)
        for candidate in candidates:
            full = os.path.join(self.path, candidate)
            if os.path.isfile(full):
                return full
        raise VerifyError(
            "missing_member",
            f"{self.path}: the data file of {label} ({' or '.join(candidates)}) is missing",
        )

    def _files(self) -> list:
        """(member, [data files]) for every data entry, checking presence and cheap completeness."""
        out = []
        for entry in _data_entries(self.toc):
            path = self._data_file(entry.filename, entry.label)
            member = _member_for(entry, os.path.basename(path))
            files = [path]
            member.stored_bytes = os.path.getsize(path)
            if entry.filename.endswith(".toc"):
                # Large objects: a listing "<oid> <file>" and one file per object.
                files = [self._data_file(name, entry.label) for name in _blob_list(path)]
                member.large_objects = len(files)
                member.stored_bytes += sum(os.path.getsize(f) for f in files)
            for f in files:
                _check_file_shape(f, member)
            out.append((member, files))
        return out

    def structure(self) -> list:
        self._read_toc()
        self.members = [member for member, _files in self._files()]
        return self.members

    def read(self) -> list:
        self._read_toc()
        members = []
        for member, files in self._files():
            total = 0
            for path in files:
                counter = _read_file(path, member)
                total += counter.bytes
                if member.large_objects is None:
                    _check_copy_end(member, counter, path)
            member.data_bytes = total
            members.append(member)
        self.members = members
        return members

    def sha256(self) -> str:
        if self._sha256 is None:
            self._sha256 = directory_sha256(self.path)
        return self._sha256


class TarArchive(Archive):
    format = FORMAT_TAR

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.size = os.path.getsize(path)
        self.index: dict = {}
        self.order: list = []
        self.complete = False
        self.end_marker = False

    def _scan(self) -> None:
        """Every tar header, without trusting the tarfile module's silence on short archives."""
        self.index, self.order, self.complete, self.end_marker = {}, [], True, False
        with open(self.path, "rb") as fh:
            pos = 0
            while True:
                fh.seek(pos)
                block = fh.read(512)
                if not block:
                    return
                if len(block) < 512:
                    self.complete = False
                    return
                if block == b"\0" * 512:
                    self.end_marker = True
                    return
                name, size, kind = _tar_header(block, self.path, pos)
                data_start = pos + 512
                available = max(0, min(size, self.size - data_start))
                self.index[name] = (data_start, size, available)
                self.order.append(name)
                if available < size:
                    self.complete = False
                    return
                if kind not in (b"0", b"\0", b"x", b"g", b"L", b"K", b"5"):
                    raise VerifyError("corrupt", f"{self.path}: member {name} has unexpected tar type {kind!r}")
                pos = data_start + (size + 511) // 512 * 512

    def _member_bytes(self, name: str, what: str) -> bytes:
        start, size, available = self.index[name]
        if available < size:
            raise VerifyError(
                "truncated",
                f"{self.path} ends at byte {self.size} inside member {name} ({what}): {available} of its "
                f"{size} bytes are there; the archive is truncated",
            )
        with open(self.path, "rb") as fh:
            fh.seek(start)
            return fh.read(size)

    def _toc_member(self) -> bytes:
        self._scan()
        if not self.order:
            raise VerifyError("truncated", f"{self.path} ends before its first member: it is truncated")
        if self.order[0] != "toc.dat":
            raise VerifyError(
                "not_an_archive",
                f"{self.path} is a tar file, but its first member is {self.order[0]}, not pg_dump's toc.dat",
            )
        return self._member_bytes("toc.dat", "the TOC")

    def header(self) -> Header:
        import io

        data = self._toc_member()
        self.header_info = _parse_header(_Binary(io.BytesIO(data), len(data), self.path + ":toc.dat"), FORMAT_TAR)
        return self.header_info

    def _read_toc(self) -> None:
        import io

        data = self._toc_member()
        r = _Binary(io.BytesIO(data), len(data), self.path + ":toc.dat")
        self.header_info = _parse_header(r, FORMAT_TAR)

        def extra(r: _Binary, entry: TocEntry, context: str) -> None:
            entry.filename = r.str(context)

        self.toc = _parse_toc(r, self.header_info, extra)

    def _lookup(self, name: str, label: str) -> str:
        name = _safe_member_name(name, self.path, label)
        candidates = [name]
        suffix = _FILE_SUFFIXES.get(self.header_info.compression)
        if suffix and not name.endswith(suffix):
            candidates.insert(0, name + suffix)
        for candidate in candidates:
            if candidate in self.index:
                start, size, available = self.index[candidate]
                if available < size:
                    raise VerifyError(
                        "truncated",
                        f"{self.path} ends at byte {self.size} inside member {candidate} (the data of {label}): "
                        f"{available} of its {size} bytes are there; the archive is truncated",
                    )
                return candidate
        if not self.complete:
            raise VerifyError(
                "truncated",
                f"{self.path} ends at byte {self.size} before member {name} (the data of {label}): "
                "the archive is truncated",
            )
        raise VerifyError("missing_member", f"{self.path} has no member {name} (the data of {label})")

    def _plan(self) -> list:
        out = []
        for entry in _data_entries(self.toc):
            filename = entry.filename
            large_objects = entry.desc in ("BLOBS", "LARGE OBJECTS")
            if large_objects:
                # The TOC names every entry NNNN.dat, but pg_dump writes large objects as a listing
                # (blobs.toc; blobs_NNNN.toc since PostgreSQL 17) and one blob_OID.dat per object.
                filename = f"blobs_{entry.dump_id}.toc" if f"blobs_{entry.dump_id}.toc" in self.index else "blobs.toc"
            name = self._lookup(filename, entry.label)
            member = _member_for(entry, name)
            names = [name]
            if large_objects or filename.endswith(".toc"):
                member.large_objects = 0
                names = []
                listing = self._member_bytes(name, entry.label).decode("utf-8", "replace")
                for blob_name in _parse_blob_list(listing, self.path + ":" + name):
                    names.append(self._lookup(blob_name, entry.label))
                    member.large_objects += 1
            member.stored_bytes = sum(self.index[n][1] for n in names)
            out.append((member, names))
        return out

    def structure(self) -> list:
        self._read_toc()
        plan = self._plan()
        for member, names in plan:
            if member.copy and self.header_info.compression == "none":
                start, size, _available = self.index[names[0]]
                with open(self.path, "rb") as fh:
                    fh.seek(start + max(0, size - 8))
                    tail = fh.read(min(size, 8))
                counter = _Counter()
                counter.bytes, counter.tail = size, tail
                if not counter.copy_terminated:
                    raise VerifyError(
                        "truncated",
                        f"{self.path}: member {names[0]} (the COPY data of {member.label}) does not end with "
                        "pg_dump's end marker (\\.): it is cut short",
                    )
        if not self.complete or not self.end_marker:
            last = self.order[-1] if self.order else "nothing"
            raise VerifyError(
                "truncated",
                f"{self.path} ends at byte {self.size} without the tar end-of-archive marker "
                f"(last member: {last}): the archive is truncated",
            )
        self.members = [member for member, _names in plan]
        return self.members

    def read(self) -> list:
        self.structure()
        members = []
        with open(self.path, "rb", buffering=_READ_SIZE) as fh:
            for member, names in self._plan():
                total = 0
                for name in names:
                    start, size, _available = self.index[name]
                    fh.seek(start)
                    compression = "gzip" if name.endswith(".gz") else "none"
                    counter = _read_stream(fh, size, compression, member, f"{self.path}:{name}")
                    total += counter.bytes
                    if member.large_objects is None:
                        _check_copy_end(member, counter, f"{self.path}:{name}")
                member.data_bytes = total
                members.append(member)
        self.members = members
        return members


class PlainArchive(Archive):
    """Plain SQL from pg_dump, optionally gzip-compressed (pg_dump -Fp | gzip, or pg_dump -Fp -Z)."""

    def __init__(self, path: str, compressed: bool) -> None:
        super().__init__(path)
        self.format = FORMAT_PLAIN_GZIP if compressed else FORMAT_PLAIN
        self.compressed = compressed
        self.size = os.path.getsize(path)
        self.meta_commands: list = []
        self.scanned = False

    def _open_text(self):
        import gzip

        return gzip.open(self.path, "rb") if self.compressed else open(self.path, "rb", buffering=_READ_SIZE)

    def header(self) -> Header:
        head = _head_of(self.path, self.compressed, 65536)
        lines = head.split(b"\n")
        if PLAIN_CLUSTER_HEAD in lines[:5]:
            raise VerifyError(
                "not_an_archive",
                f"{self.path} is pg_dumpall output (a whole cluster); this module verifies pg_dump output "
                "of one database",
            )
        if PLAIN_HEAD.rstrip(b"\n") not in lines[:5]:
            raise VerifyError(
                "not_an_archive", f"{self.path} does not start with pg_dump's '-- PostgreSQL database dump' comment"
            )
        header = Header(format=self.format, compression="gzip" if self.compressed else "none")
        for line in lines[:200]:
            text = line.decode("utf-8", "replace")
            if text.startswith("-- Dumped from database version "):
                header.server_version = text[len("-- Dumped from database version ") :].strip()
            elif text.startswith("-- Dumped by pg_dump version "):
                header.pg_dump_version = text[len("-- Dumped by pg_dump version ") :].strip()
            elif text.startswith("-- Started on ") and header.created is None:
                header.created = text[len("-- Started on ") :].strip()
            else:
                match = re.match(r"-- Name: (.+?); Type: DATABASE; Schema: -;", text)
                if match:
                    header.database = match.group(1)
        self.header_info = header
        return header

    def structure(self) -> list:
        if self.header_info is None:
            self.header()
        self.members = self._scan()
        return self.members

    def read(self) -> list:
        # The structure scan already decompressed everything (and the gzip CRC was checked at its end).
        if not self.scanned:
            self.structure()
        return self.members

    def _scan(self) -> list:
        import gzip

        try:
            with self._open_text() as fh:
                members = _scan_plain(fh, self.path, self.meta_commands)
        except (OSError, EOFError, zlib.error) as exc:
            if isinstance(exc, EOFError):
                raise VerifyError(
                    "truncated", f"{self.path}: the gzip stream ends before its end marker ({exc}): it is truncated"
                ) from None
            if isinstance(exc, (gzip.BadGzipFile, zlib.error)):
                raise VerifyError(
                    "decompression_error", f"{self.path} cannot be decompressed ({exc}): it is corrupt"
                ) from None
            raise
        self.scanned = True
        return members


def _scan_plain(fh, path: str, meta_commands: list) -> list:
    """COPY blocks and the completion trailer of plain SQL, reading big blocks (row lines are only counted)."""
    members: dict = {}
    order: list = []
    state = {"buf": b"", "pos": 0, "eof": False}
    copy_member: Member | None = None
    data_for: str | None = None
    trailer_line = 0
    after_trailer = 0
    line_no = 0

    def fill() -> None:
        chunk = fh.read(_READ_SIZE)
        state["buf"] = state["buf"][state["pos"] :] + chunk
        state["pos"] = 0
        state["eof"] = not chunk

    def member_for(relation: tuple, copy: bool) -> Member:
        name = table_key(*relation)
        member = members.get(name)
        if member is None:
            member = Member(None, "TABLE DATA", name, "table " + name, copy, path, data_bytes=0)
            member.schema, member.table = relation
            members[name] = member
            order.append(name)
        if copy:
            member.copy = True
            member.rows = member.rows or 0
        return member

    fill()
    while True:
        buf, pos = state["buf"], state["pos"]
        if copy_member is not None:
            # Inside COPY data every line is a row, until the line "\.".
            if buf.startswith(b"\\.\n", pos):
                state["pos"] = pos + 3
                line_no += 1
                copy_member = None
                continue
            end = buf.find(b"\n\\.\n", pos)
            last = end if end >= 0 else buf.rfind(b"\n", pos)
            if last >= 0:
                lines = buf.count(b"\n", pos, last + 1)
                copy_member.rows += lines
                copy_member.data_bytes += last + 1 - pos
                line_no += lines
                state["pos"] = last + 1
            if end >= 0:
                continue
            if state["eof"]:
                raise VerifyError(
                    "truncated",
                    f"{path} ends inside the COPY data of {copy_member.label} (after {copy_member.rows} rows), "
                    "without its end marker (\\.): the dump was cut short",
                )
            fill()
            continue
        end = buf.find(b"\n", pos)
        if end < 0:
            if not state["eof"]:
                if len(buf) - pos > _MAX_LINE:
                    raise VerifyError("not_an_archive", f"{path} has a line longer than 64 MiB: it is not pg_dump SQL")
                fill()
                continue
            if pos >= len(buf):
                break
            end = len(buf) - 1  # a last line without newline
        line = buf[pos : end + 1]
        state["pos"] = end + 1
        line_no += 1
        if trailer_line:
            if line.strip() and not line.startswith(b"--") and not line.startswith(b"\\unrestrict"):
                after_trailer = after_trailer or line_no
            continue
        if line.rstrip(b"\n") == PLAIN_TRAILER.rstrip(b"\n"):
            trailer_line = line_no
        elif line.startswith(b"COPY ") and line.rstrip().endswith(b"FROM stdin;"):
            copy_member = member_for(_copy_table(line.decode("utf-8", "replace")), True)
        elif line.startswith(b"\\"):
            command = line.split(None, 1)[0].decode("utf-8", "replace")
            if command not in ("\\restrict", "\\unrestrict"):
                meta_commands.append(f"line {line_no}: {line.decode('utf-8', 'replace').strip()[:80]}")
        elif line.startswith(b"-- Data for Name: "):
            match = re.match(
                r"-- Data for Name: (.+?); Type: TABLE DATA; Schema: (.+?);", line.decode("utf-8", "replace")
            )
            if match:
                relation = (None if match.group(2) == "-" else match.group(2), match.group(1))
                data_for = member_for(relation, False).name
        elif data_for is not None and line.startswith(b"INSERT INTO "):
            members[data_for].data_bytes += len(line)
    if not trailer_line:
        raise VerifyError(
            "truncated",
            f"{path} ends without pg_dump's completion trailer '-- PostgreSQL database dump complete': "
            "the dump was cut short (if it is compressed, it was cut before compression)",
        )
    if after_trailer:
        raise VerifyError(
            "corrupt",
            f"{path} has SQL after pg_dump's completion trailer (line {after_trailer}): "
            "it is not one complete pg_dump output",
        )
    return [members[name] for name in order]


_IDENT = r'(?:"(?:[^"]|"")*"|[^\s."(]+)'
_COPY_RE = re.compile(rf"COPY ({_IDENT})(?:\.({_IDENT}))?(?: \(|\s+FROM)")


def _unquote(ident: str) -> str:
    if ident.startswith('"') and ident.endswith('"'):
        return ident[1:-1].replace('""', '"')
    return ident


def _copy_table(line: str) -> tuple:
    """(schema, table) of a "COPY schema.table (columns) FROM stdin;" line."""
    match = _COPY_RE.match(line)
    if not match:
        return None, line[5:].split(" FROM")[0].strip()
    first, second = match.group(1), match.group(2)
    if second is None:
        return None, _unquote(first)
    return _unquote(first), _unquote(second)


# --------------------------------------------------------------------------- helpers for files


def _head_of(path: str, compressed: bool, size: int) -> bytes:
    with open(path, "rb") as fh:
        raw = fh.read(size if not compressed else size)
    if not compressed:
        return raw
    try:
        return zlib.decompressobj(zlib.MAX_WBITS | 16).decompress(raw, size)
    except zlib.error as exc:
        raise VerifyError("decompression_error", f"{path}: cannot decompress its start ({exc})") from None


def _tar_number(field: bytes) -> int:
    if field and field[0] & 0x80:
        return int.from_bytes(field[1:], "big")
    text = field.replace(b"\0", b" ").strip()
    return int(text, 8) if text else 0


def _tar_header(block: bytes, path: str, pos: int) -> tuple:
    try:
        checksum = _tar_number(block[148:156])
        size = _tar_number(block[124:136])
    except ValueError:
        raise VerifyError("corrupt", f"{path}: the tar header at byte {pos} is corrupt") from None
    unsigned = sum(block[:148]) + 8 * 32 + sum(block[156:])
    if checksum != unsigned:
        raise VerifyError("corrupt", f"{path}: the tar header at byte {pos} has a wrong checksum: it is corrupt")
    name = block[0:100].split(b"\0", 1)[0]
    if block[257:262] == b"ustar":
        prefix = block[345:500].split(b"\0", 1)[0]
        if prefix:
            name = prefix + b"/" + name
    return name.decode("utf-8", "replace"), size, block[156:157]


def _blob_list(path: str) -> list:
    with open(path, "rb") as fh:
        return _parse_blob_list(fh.read().decode("utf-8", "replace"), path)


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


def _check_file_shape(path: str, member: Member) -> None:
    """Cheap completeness checks that need no decompression."""
    size = os.path.getsize(path)
    if size == 0:
        raise VerifyError("truncated", f"{path} (the data of {member.label}) is empty: it is truncated")
    if path.endswith(".gz"):
        with open(path, "rb") as fh:
            if fh.read(2) != b"\x1f\x8b":
                raise VerifyError("corrupt", f"{path} (the data of {member.label}) is not gzip data: it is corrupt")
    elif member.copy and member.large_objects is None and not path.endswith(tuple(_FILE_SUFFIXES.values())):
        with open(path, "rb") as fh:
            fh.seek(max(0, size - 8))
            counter = _Counter()
            counter.bytes, counter.tail = size, fh.read()
        if not counter.copy_terminated:
            raise VerifyError(
                "truncated",
                f"{path} (the COPY data of {member.label}) does not end with pg_dump's end marker (\\.): "
                "it is cut short",
            )


def _read_file(path: str, member: Member) -> _Counter:
    # The suffix says how pg_dump wrote the file (pg_restore decides the same way).
    file_compression = "none"
    for algorithm, suffix in _FILE_SUFFIXES.items():
        if path.endswith(suffix):
            file_compression = algorithm
    with open(path, "rb", buffering=_READ_SIZE) as fh:
        return _read_stream(fh, os.path.getsize(path), file_compression, member, path)


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


def _directory_size(path: str) -> int:
    total = 0
    for name in os.listdir(path):
        full = os.path.join(path, name)
        if os.path.isfile(full):
            total += os.path.getsize(full)
    return total


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


# --------------------------------------------------------------------------- detection


def open_archive(path: str) -> Archive:
    """The archive at path, its format detected from content (never from the file name)."""
    if not os.path.exists(path):
        raise VerifyError("not_found", f"{path} does not exist")
    if os.path.isdir(path):
        toc = os.path.join(path, "toc.dat")
        if not os.path.isfile(toc):
            raise VerifyError(
                "not_an_archive", f"{path} is a directory without toc.dat: it is not a pg_dump directory archive"
            )
        if os.path.getsize(toc) == 0:
            raise VerifyError("empty", f"{toc} is empty")
        return DirectoryArchive(path)
    if not os.path.isfile(path):
        raise VerifyError("not_an_archive", f"{path} is neither a regular file nor a directory")
    size = os.path.getsize(path)
    if size == 0:
        raise VerifyError("empty", f"{path} is empty (0 bytes)")
    with open(path, "rb") as fh:
        head = fh.read(1024)
    if head.startswith(b"PGDMP"):
        code = head[10] if len(head) > 10 and head[5] == 1 and head[6] >= 7 else None
        if code in (3, 5):
            raise VerifyError(
                "not_an_archive",
                f"{path} is the toc.dat of a directory archive: give the directory that contains it",
            )
        return CustomArchive(path)
    if len(head) >= 262 and head[257:262] == b"ustar":
        return TarArchive(path)
    if head.startswith(b"\x1f\x8b"):
        start = _head_of(path, True, 4096)
        if start.startswith(b"PGDMP"):
            raise VerifyError(
                "not_an_archive",
                f"{path} is a gzip-compressed custom archive: decompress it first (pg_restore cannot read it)",
            )
        if start.startswith(b"--") or not start:
            return PlainArchive(path, compressed=True)
        raise VerifyError("not_an_archive", f"{path} is gzip data, but not of pg_dump SQL")
    if head.startswith(b"--"):
        return PlainArchive(path, compressed=False)
    raise VerifyError(
        "not_an_archive",
        f"{path} is not a pg_dump archive (no PGDMP header, no tar with toc.dat, "
        "no SQL starting with pg_dump's comment)",
    )


# --------------------------------------------------------------------------- manifest and comparison


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
