# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Plain SQL (pg_dump -Fp), optionally gzip-compressed: COPY blocks and pg_dump's completion trailer."""

from __future__ import annotations

import os
import re
import zlib

from ansible_collections.opsbook.webstack.plugins.module_utils.pg_archive import common


class PlainArchive(common.Archive):
    """Plain SQL from pg_dump, optionally gzip-compressed (pg_dump -Fp | gzip, or pg_dump -Fp -Z)."""

    def __init__(self, path: str, compressed: bool) -> None:
        super().__init__(path)
        self.format = common.FORMAT_PLAIN_GZIP if compressed else common.FORMAT_PLAIN
        self.compressed = compressed
        self.size = os.path.getsize(path)
        self.meta_commands: list = []
        self.scanned = False

    def _open_text(self):
        import gzip

        return gzip.open(self.path, "rb") if self.compressed else open(self.path, "rb", buffering=common._READ_SIZE)

    def header(self) -> common.Header:
        head = common._head_of(self.path, self.compressed, 65536)
        lines = head.split(b"\n")
        if common.PLAIN_CLUSTER_HEAD in lines[:5]:
            raise common.VerifyError(
                "not_an_archive",
                f"{self.path} is pg_dumpall output (a whole cluster); this module verifies pg_dump output "
                "of one database",
            )
        if common.PLAIN_HEAD.rstrip(b"\n") not in lines[:5]:
            raise common.VerifyError(
                "not_an_archive", f"{self.path} does not start with pg_dump's '-- PostgreSQL database dump' comment"
            )
        header = common.Header(format=self.format, compression="gzip" if self.compressed else "none")
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
                raise common.VerifyError(
                    "truncated", f"{self.path}: the gzip stream ends before its end marker ({exc}): it is truncated"
                ) from None
            if isinstance(exc, (gzip.BadGzipFile, zlib.error)):
                raise common.VerifyError(
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
    copy_member: common.Member | None = None
    data_for: str | None = None
    trailer_line = 0
    after_trailer = 0
    line_no = 0

    def fill() -> None:
        chunk = fh.read(common._READ_SIZE)
        state["buf"] = state["buf"][state["pos"] :] + chunk
        state["pos"] = 0
        state["eof"] = not chunk

    def member_for(relation: tuple, copy: bool) -> common.Member:
        name = common.table_key(*relation)
        member = members.get(name)
        if member is None:
            member = common.Member(None, "TABLE DATA", name, "table " + name, copy, path, data_bytes=0)
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
                raise common.VerifyError(
                    "truncated",
                    f"{path} ends inside the COPY data of {copy_member.label} (after {copy_member.rows} rows), "
                    "without its end marker (\\.): the dump was cut short",
                )
            fill()
            continue
        end = buf.find(b"\n", pos)
        if end < 0:
            if not state["eof"]:
                if len(buf) - pos > common._MAX_LINE:
                    raise common.VerifyError(
                        "not_an_archive", f"{path} has a line longer than 64 MiB: it is not pg_dump SQL"
                    )
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
        if line.rstrip(b"\n") == common.PLAIN_TRAILER.rstrip(b"\n"):
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
        raise common.VerifyError(
            "truncated",
            f"{path} ends without pg_dump's completion trailer '-- PostgreSQL database dump complete': "
            "the dump was cut short (if it is compressed, it was cut before compression)",
        )
    if after_trailer:
        raise common.VerifyError(
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
