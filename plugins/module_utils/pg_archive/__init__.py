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

A package: common.py holds what the formats share; custom.py, directory.py, tar.py and plain.py hold
one format each; open_archive() below picks one from the content. Modules import from the package
(the names below), never from its files.
"""

from __future__ import annotations

import os

from ansible_collections.opsbook.webstack.plugins.module_utils.pg_archive.common import (  # noqa: F401 - the package's interface
    BLK_BLOBS,
    BLK_DATA,
    COPY_END,
    COPY_END_LINE,
    FORMAT_CUSTOM,
    FORMAT_DIRECTORY,
    FORMAT_PLAIN,
    FORMAT_PLAIN_GZIP,
    FORMAT_TAR,
    FORMATS,
    K_OFFSET_NO_DATA,
    K_OFFSET_POS_NOT_SET,
    K_OFFSET_POS_SET,
    LEVELS,
    MAX_ARCHIVE_VERSION,
    PLAIN_CLUSTER_HEAD,
    PLAIN_HEAD,
    PLAIN_TRAILER,
    Archive,
    GrowingFile,
    Header,
    Manifest,
    Member,
    RestoreOutputCounter,
    TocEntry,
    VerifyError,
    _Counter,
    _head_of,
    compare_counts,
    describe_mismatches,
    directory_sha256,
    file_sha256,
    load_manifest,
    normalize_sha256,
    normalize_table,
    table_key,
)
from ansible_collections.opsbook.webstack.plugins.module_utils.pg_archive.custom import CustomArchive
from ansible_collections.opsbook.webstack.plugins.module_utils.pg_archive.directory import DirectoryArchive
from ansible_collections.opsbook.webstack.plugins.module_utils.pg_archive.plain import PlainArchive
from ansible_collections.opsbook.webstack.plugins.module_utils.pg_archive.tar import TarArchive


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
