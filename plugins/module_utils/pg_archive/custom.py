# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The custom format (pg_dump -Fc): one file, the TOC, then data blocks (pg_backup_custom.c).

Also followed while pg_dump writes it (CustomArchive(growing=True).follow), for pg_backup_dump's
verification during the dump.
"""

from __future__ import annotations

import os

from ansible_collections.opsbook.webstack.plugins.module_utils.pg_archive import common


class CustomArchive(common.Archive):
    format = common.FORMAT_CUSTOM

    def __init__(self, path: str, growing: bool = False) -> None:
        """growing: the file is still being written (perhaps not yet created); only follow() then."""
        super().__init__(path)
        self.size = None if growing else os.path.getsize(path)
        self.data_start = 0

    def header(self) -> common.Header:
        with open(self.path, "rb") as fh:
            self.header_info = common._parse_header(common._Binary(fh, self.size, self.path), common.FORMAT_CUSTOM)
        return self.header_info

    def _read_toc(self, fh) -> common._Binary:
        r = common._Binary(fh, self.size, self.path)
        header = common._parse_header(r, common.FORMAT_CUSTOM)
        self.header_info = header

        def extra(r: common._Binary, entry: common.TocEntry, context: str) -> None:
            entry.data_state, entry.data_pos = r.offset(context)
            if header.version < (1, 7, 0):
                r.int(context)

        self.toc = common._parse_toc(r, header, extra)
        self.data_start = fh.tell()
        return r

    def structure(self) -> list:
        self.members = self._walk(decode=False)
        return self.members

    def read(self) -> list:
        self.members = self._walk(decode=True)
        return self.members

    def _walk(self, decode: bool) -> list:
        with open(self.path, "rb", buffering=common._READ_SIZE) as fh:
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
        with common.GrowingFile(self.path, writer_running, tap) as fh:
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
                raise common.VerifyError(
                    "corrupt",
                    f"{self.path}: the finished archive holds the data of {member.label} at byte {member.offset} "
                    f"({member.stored_bytes} bytes), but it {where} while the dump was written",
                )
            member.rows, member.data_bytes, member.large_objects = read.rows, read.data_bytes, read.large_objects
        if len(final.members) != len(self.members):
            raise common.VerifyError(
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
                raise common.VerifyError("corrupt", f"{self.path}: pg_restore wrote the COPY data of {stmt!r} twice")
            written[stmt] = (rows, size)
        entries = {e.dump_id: e for e in common._data_entries(self.toc)}
        for member in self.members:
            if not member.copy:
                continue
            got = written.pop((entries[member.dump_id].copy_stmt or "").strip(), None)
            if got is None:
                raise common.VerifyError(
                    "missing_member", f"{self.path}: pg_restore wrote no COPY data for {member.label}"
                )
            member.rows, member.data_bytes = got
        if written:
            raise common.VerifyError(
                "corrupt",
                f"{self.path}: pg_restore wrote COPY data the TOC does not list: {common._some(sorted(written))}",
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
        expected = {e.dump_id: e for e in common._data_entries(self.toc)}
        found = {}
        while True:
            pos = fh.tell()
            first = fh.read(1)
            if not first:
                break
            block_type = first[0]
            if block_type not in (common.BLK_DATA, common.BLK_BLOBS):
                raise common.VerifyError(
                    "corrupt",
                    f"{self.path}: unknown data block type {block_type} at byte {pos}: the archive is corrupt",
                )
            dump_id = r.int(f"the data block header at byte {pos}")
            entry = expected.get(dump_id)
            if entry is None or dump_id in found:
                what = "a second" if dump_id in found else "an unexpected"
                raise common.VerifyError(
                    "corrupt",
                    f"{self.path}: {what} data block for entry ID {dump_id} at byte {pos}: the archive is corrupt",
                )
            if entry.data_state == common.K_OFFSET_POS_SET and entry.data_pos != pos:
                raise common.VerifyError(
                    "corrupt",
                    f"{self.path}: the TOC places the data of {entry.label} at byte {entry.data_pos}, "
                    f"but its block is at byte {pos}",
                )
            member = common._member_for(entry, f"byte {pos}")
            member.offset = pos
            if block_type == common.BLK_DATA:
                counter = common._Counter()
                self._stream(r, fh, member, header.compression, counter if decode else None)
                if decode:
                    common._check_copy_end(member, counter, self.path)
            else:
                member.large_objects = 0
                member.data_bytes = 0
                while True:
                    oid = r.int(f"the data of {entry.label}")
                    if oid == 0:
                        break
                    counter = common._Counter()
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
            if first.data_state == common.K_OFFSET_POS_SET:
                where = f" (the TOC places it at byte {first.data_pos})"
            raise common.VerifyError(
                "truncated",
                f"{self.path} ends at byte {self._end(fh)} after {len(found)} of {len(expected)} data blocks: "
                f"no data for {common._some([e.label for e in missing])}{where}; it is truncated",
            )
        return [found[e.dump_id] for e in common._data_entries(self.toc)]

    def _stream(
        self, r: common._Binary, fh, member: common.Member, compression: str, counter: common._Counter | None
    ) -> None:
        """One compressed (or plain) stream: chunks until a zero length."""
        inflater = common._Inflater(compression, "zlib", member.label) if counter is not None else None
        context = f"the data of {member.label}"
        while True:
            length = r.int(context)
            if length == 0:
                break
            start = fh.tell()
            if length < 0 or (self.size is not None and start + length > self.size):
                raise common.VerifyError(
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
