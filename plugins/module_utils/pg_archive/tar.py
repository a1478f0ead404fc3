# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The tar format (pg_dump -Ft): toc.dat and one member per data item, then restore.sql (pg_backup_tar.c)."""

from __future__ import annotations

import os

from ansible_collections.opsbook.webstack.plugins.module_utils.pg_archive import common


class TarArchive(common.Archive):
    format = common.FORMAT_TAR

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
                    raise common.VerifyError("corrupt", f"{self.path}: member {name} has unexpected tar type {kind!r}")
                pos = data_start + (size + 511) // 512 * 512

    def _check_available(self, name: str, what: str) -> None:
        _start, size, available = self.index[name]
        if available < size:
            raise common.VerifyError(
                "truncated",
                f"{self.path} ends at byte {self.size} inside member {name} ({what}): {available} of its "
                f"{size} bytes are there; the archive is truncated",
            )

    def _member_bytes(self, name: str, what: str) -> bytes:
        self._check_available(name, what)
        start, size, _available = self.index[name]
        with open(self.path, "rb") as fh:
            fh.seek(start)
            return fh.read(size)

    def _toc_member(self) -> bytes:
        self._scan()
        if not self.order:
            raise common.VerifyError("truncated", f"{self.path} ends before its first member: it is truncated")
        if self.order[0] != "toc.dat":
            raise common.VerifyError(
                "not_an_archive",
                f"{self.path} is a tar file, but its first member is {self.order[0]}, not pg_dump's toc.dat",
            )
        return self._member_bytes("toc.dat", "the TOC")

    def header(self) -> common.Header:
        import io

        data = self._toc_member()
        self.header_info = common._parse_header(
            common._Binary(io.BytesIO(data), len(data), self.path + ":toc.dat"), common.FORMAT_TAR
        )
        return self.header_info

    def _read_toc(self) -> None:
        import io

        data = self._toc_member()
        r = common._Binary(io.BytesIO(data), len(data), self.path + ":toc.dat")
        self.header_info = common._parse_header(r, common.FORMAT_TAR)

        def extra(r: common._Binary, entry: common.TocEntry, context: str) -> None:
            entry.filename = r.str(context)

        self.toc = common._parse_toc(r, self.header_info, extra)

    def _lookup(self, name: str, label: str) -> str:
        for candidate in common._member_candidates(name, self.path, label, self.header_info.compression):
            if candidate in self.index:
                self._check_available(candidate, f"the data of {label}")
                return candidate
        if not self.complete:
            raise common.VerifyError(
                "truncated",
                f"{self.path} ends at byte {self.size} before member {name} (the data of {label}): "
                "the archive is truncated",
            )
        raise common.VerifyError("missing_member", f"{self.path} has no member {name} (the data of {label})")

    def _plan(self) -> list:
        out = []
        for entry in common._data_entries(self.toc):
            filename = entry.filename
            large_objects = entry.desc in ("BLOBS", "LARGE OBJECTS")
            if large_objects:
                # The TOC names every entry NNNN.dat, but pg_dump writes large objects as a listing
                # (blobs.toc; blobs_NNNN.toc since PostgreSQL 17) and one blob_OID.dat per object.
                filename = f"blobs_{entry.dump_id}.toc" if f"blobs_{entry.dump_id}.toc" in self.index else "blobs.toc"
            name = self._lookup(filename, entry.label)
            member = common._member_for(entry, name)
            names = [name]
            if large_objects or filename.endswith(".toc"):
                member.large_objects = 0
                names = []
                listing = self._member_bytes(name, entry.label).decode("utf-8", "replace")
                for blob_name in common._parse_blob_list(listing, self.path + ":" + name):
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
                counter = common._Counter()
                counter.bytes, counter.tail = size, tail
                if not counter.copy_terminated:
                    raise common.VerifyError(
                        "truncated",
                        f"{self.path}: member {names[0]} (the COPY data of {member.label}) does not end with "
                        "pg_dump's end marker (\\.): it is cut short",
                    )
        if not self.complete or not self.end_marker:
            last = self.order[-1] if self.order else "nothing"
            raise common.VerifyError(
                "truncated",
                f"{self.path} ends at byte {self.size} without the tar end-of-archive marker "
                f"(last member: {last}): the archive is truncated",
            )
        self.members = [member for member, _names in plan]
        return self.members

    def read(self) -> list:
        self.structure()
        members = []
        with open(self.path, "rb", buffering=common._READ_SIZE) as fh:
            for member, names in self._plan():
                total = 0
                for name in names:
                    start, size, _available = self.index[name]
                    fh.seek(start)
                    compression = "gzip" if name.endswith(".gz") else "none"
                    counter = common._read_stream(fh, size, compression, member, f"{self.path}:{name}")
                    total += counter.bytes
                    if member.large_objects is None:
                        common._check_copy_end(member, counter, f"{self.path}:{name}")
                member.data_bytes = total
                members.append(member)
        self.members = members
        return members


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
        raise common.VerifyError("corrupt", f"{path}: the tar header at byte {pos} is corrupt") from None
    unsigned = sum(block[:148]) + 8 * 32 + sum(block[156:])
    if checksum != unsigned:
        raise common.VerifyError("corrupt", f"{path}: the tar header at byte {pos} has a wrong checksum: it is corrupt")
    name = block[0:100].split(b"\0", 1)[0]
    if block[257:262] == b"ustar":
        prefix = block[345:500].split(b"\0", 1)[0]
        if prefix:
            name = prefix + b"/" + name
    return name.decode("utf-8", "replace"), size, block[156:157]
