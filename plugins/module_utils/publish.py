# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Publication of a verified backup: its archives checked (each decompresses whole; from a
bundle, checked while extracted), the manifest written, then atomic renames to the final names
and the `latest` links. backup_publish's first step; rotation (retention_apply) and the lock's
release (retention_apply.release_backup_lock) are the other two, each callable alone.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pwd
import tarfile
import zlib

from ansible_collections.opsbook.webstack.plugins.module_utils.retention_apply import RetentionError, check_policy

CHUNK = 1 << 20


class PublishError(Exception):
    pass


def plain(path: str, name: str, what: str) -> str:
    if not name or "/" in name or name in (".", ".."):
        raise PublishError(f"{what} must be a file name inside {path}, got {name!r}; nothing was published")
    return os.path.join(path, name)


def without_extension(name: str) -> str:
    """journal-20261129T030000Z.dump -> journal-20261129T030000Z; .tmp-x.dir -> .tmp-x."""
    head, dot, _ext = name[1:].rpartition(".")
    return name[0] + head if dot else name


def archive_entry(path: str, name: str, source=None, sink=None) -> dict:
    """Size and sha256 of a gzip archive that decompresses whole (gzip -t's check, in one read).

    Reads path, or source (a file object, such as a bundle's member) when given; sink receives
    every chunk read (the member's extraction to path)."""
    sha = hashlib.sha256()
    size = 0
    try:
        with contextlib.nullcontext(source) if source is not None else open(path, "rb") as raw:
            inflate = zlib.decompressobj(wbits=31)  # gzip framing; its CRC and length are checked at the end
            while chunk := raw.read(CHUNK):
                if sink is not None:
                    sink(chunk)
                sha.update(chunk)
                size += len(chunk)
                data = chunk
                while data:
                    inflate.decompress(data, CHUNK)
                    data = inflate.unconsumed_tail
                    if inflate.eof and inflate.unused_data:
                        # A further gzip member (concatenated streams are valid gzip).
                        data = inflate.unused_data
                        inflate = zlib.decompressobj(wbits=31)
            if not inflate.eof:
                raise PublishError(
                    f"the {name} archive {path} is truncated (it does not decompress whole); nothing was published"
                )
    except (OSError, zlib.error) as exc:
        raise PublishError(
            f"the {name} archive {path} does not decompress whole: {exc}; nothing was published"
        ) from None
    return {"file": "", "size": size, "sha256": sha.hexdigest()}


def unbundle(bundle: str, archives: list[dict], moves: list[tuple[str, str]], owner: tuple | None) -> dict:
    """Extract each archive from the bundle to its temporary name (0600), checked as it is written."""
    # moves is made from archives, one each (zip(strict=) is Python 3.10+, modules run on 3.9).
    wanted = {f"{a['name']}.tar.gz": (a, src) for a, (src, _dest) in zip(archives, moves)}  # noqa: B905
    entries = {}
    try:
        with tarfile.open(bundle, "r:") as tar:
            for member in tar:
                if member.name not in wanted or not member.isfile() or member.name in entries:
                    raise PublishError(
                        f"the bundle {bundle} holds {member.name!r}, which is not one of the archives "
                        f"({', '.join(sorted(wanted))}) as a file; nothing was published"
                    )
                archive, src = wanted[member.name]
                fd = os.open(src, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as out:
                    entries[member.name] = archive_entry(
                        f"{bundle}:{member.name}", archive["name"], tar.extractfile(member), out.write
                    )
                if owner:
                    os.chown(src, *owner)
    except tarfile.TarError as exc:
        raise PublishError(f"the bundle {bundle} is not a readable tar: {exc}; nothing was published") from None
    missing = sorted(set(wanted) - set(entries))
    if missing:
        raise PublishError(f"the bundle {bundle} lacks {', '.join(missing)}; nothing was published")
    os.unlink(bundle)
    return {wanted[member][0]["name"]: entry for member, entry in entries.items()}


def write_private(target: str, text: str, owner: tuple | None) -> None:
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(target, 0o600)
    if owner:
        os.chown(target, *owner)


def relink(path: str, link: str, target: str, owner: tuple | None) -> None:
    tmp = os.path.join(path, f".{link}.tmp")
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(target, tmp)
    if owner:
        os.lchown(tmp, *owner)
    os.replace(tmp, os.path.join(path, link))


def publish(p: dict, check_mode: bool, published: list) -> dict:
    """Check, write the manifest, rename; the manifest written. p: backup_publish's parameters
    (path, dump, name, manifest, archives, bundle, owner, rotate). Raises PublishError
    (before the first rename: nothing was published). published receives each path renamed."""
    path = p["path"]
    dump = plain(path, p["dump"], "dump")
    final = plain(path, p["name"], "name")
    manifest_path = os.path.join(path, without_extension(p["name"]) + ".json")
    moves = [(plain(path, a["src"], "archives.src"), plain(path, a["dest"], "archives.dest")) for a in p["archives"]]
    bundle = plain(path, p["bundle"], "bundle") if p["bundle"] else None
    if bundle and not os.path.isfile(bundle):
        raise PublishError(f"the bundle {bundle} does not exist; nothing was published")
    if not os.path.lexists(dump):
        raise PublishError(f"the dump {dump} does not exist; nothing was published")
    owner = None
    if p["owner"]:
        try:
            user = pwd.getpwnam(p["owner"])
            owner = (user.pw_uid, user.pw_gid)
        except KeyError:
            raise PublishError(f"owner {p['owner']!r} is not a user of this host; nothing was published") from None
    if p["rotate"]:
        try:
            check_policy(p["rotate"]["policy"])
        except RetentionError as exc:
            raise PublishError(f"{p['rotate']['policy_name']}: {exc}; nothing was published") from None
    if check_mode:
        published.extend([dest for _src, dest in moves] + [final, manifest_path])
        return dict(p["manifest"], file=p["name"])

    try:
        files = {}
        checked = unbundle(bundle, p["archives"], moves, owner) if bundle else {}
        for archive, (src, _dest) in zip(p["archives"], moves):  # noqa: B905 - one move per archive
            entry = checked.get(archive["name"]) or archive_entry(src, archive["name"])
            entry["file"] = archive["dest"]
            files[archive["name"]] = entry
        manifest = dict(p["manifest"], file=p["name"], files=files)
        tmp_manifest = os.path.join(path, without_extension(p["dump"]) + ".json")
        write_private(tmp_manifest, json.dumps(manifest, indent=4, sort_keys=True) + "\n", owner)
    except OSError as exc:
        raise PublishError(f"could not prepare the backup for publication: {exc}; nothing was published") from None

    try:
        for src, dest in [*moves, (dump, final), (tmp_manifest, manifest_path)]:
            os.replace(src, dest)
            published.append(dest)
        relink(path, "latest", p["name"], owner)
        relink(path, "latest.json", os.path.basename(manifest_path), owner)
        dir_fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        done = f"; published before it: {', '.join(published)}" if published else "; nothing was published"
        raise PublishError(f"publishing stopped at {exc.filename}: {exc.strerror}{done}") from None
    return manifest
