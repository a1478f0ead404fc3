# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The directory format (pg_dump -Fd): toc.dat and one file per data item (pg_backup_directory.c)."""

from __future__ import annotations

import os

from ansible_collections.opsbook.webstack.plugins.module_utils.pg_archive import common


class DirectoryArchive(common.Archive):
    format = common.FORMAT_DIRECTORY

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.toc_path = os.path.join(path, "toc.dat")
        self.size = _directory_size(path)

    def header(self) -> common.Header:
        with open(self.toc_path, "rb") as fh:
            self.header_info = common._parse_header(
                common._Binary(fh, os.path.getsize(self.toc_path), self.toc_path), common.FORMAT_DIRECTORY
            )
        return self.header_info

    def _read_toc(self) -> None:
        with open(self.toc_path, "rb") as fh:
            r = common._Binary(fh, os.path.getsize(self.toc_path), self.toc_path)
            self.header_info = common._parse_header(r, common.FORMAT_DIRECTORY)

            def extra(r: common._Binary, entry: common.TocEntry, context: str) -> None:
                entry.filename = r.str(context)

            self.toc = common._parse_toc(r, self.header_info, extra)
            if fh.read(1):
                raise common.VerifyError(
                    "corrupt", f"{self.toc_path} has bytes after the end of its TOC: it is corrupt"
                )

    def _data_file(self, name: str, label: str) -> str:
        """pg_restore opens NAME, or NAME plus the compression suffix."""
        candidates = common._member_candidates(name, self.path, label, self.header_info.compression)
        for candidate in candidates:
            full = os.path.join(self.path, candidate)
            if os.path.isfile(full):
                return full
        raise common.VerifyError(
            "missing_member",
            f"{self.path}: the data file of {label} ({' or '.join(candidates)}) is missing",
        )

    def _files(self) -> list:
        """(member, [data files]) for every data entry, checking presence and cheap completeness."""
        out = []
        for entry in common._data_entries(self.toc):
            path = self._data_file(entry.filename, entry.label)
            member = common._member_for(entry, os.path.basename(path))
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
                    common._check_copy_end(member, counter, path)
            member.data_bytes = total
            members.append(member)
        self.members = members
        return members

    def sha256(self) -> str:
        if self._sha256 is None:
            self._sha256 = common.directory_sha256(self.path)
        return self._sha256


def _blob_list(path: str) -> list:
    with open(path, "rb") as fh:
        return common._parse_blob_list(fh.read().decode("utf-8", "replace"), path)


def _check_file_shape(path: str, member: common.Member) -> None:
    """Cheap completeness checks that need no decompression."""
    size = os.path.getsize(path)
    if size == 0:
        raise common.VerifyError("truncated", f"{path} (the data of {member.label}) is empty: it is truncated")
    if path.endswith(".gz"):
        with open(path, "rb") as fh:
            if fh.read(2) != b"\x1f\x8b":
                raise common.VerifyError(
                    "corrupt", f"{path} (the data of {member.label}) is not gzip data: it is corrupt"
                )
    elif member.copy and member.large_objects is None and not path.endswith(tuple(common._FILE_SUFFIXES.values())):
        with open(path, "rb") as fh:
            fh.seek(max(0, size - 8))
            counter = common._Counter()
            counter.bytes, counter.tail = size, fh.read()
        if not counter.copy_terminated:
            raise common.VerifyError(
                "truncated",
                f"{path} (the COPY data of {member.label}) does not end with pg_dump's end marker (\\.): "
                "it is cut short",
            )


def _read_file(path: str, member: common.Member) -> common._Counter:
    # The suffix says how pg_dump wrote the file (pg_restore decides the same way).
    file_compression = "none"
    for algorithm, suffix in common._FILE_SUFFIXES.items():
        if path.endswith(suffix):
            file_compression = algorithm
    with open(path, "rb", buffering=common._READ_SIZE) as fh:
        return common._read_stream(fh, os.path.getsize(path), file_compression, member, path)


def _directory_size(path: str) -> int:
    total = 0
    for name in os.listdir(path):
        full = os.path.join(path, name)
        if os.path.isfile(full):
            total += os.path.getsize(full)
    return total
