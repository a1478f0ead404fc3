#!/usr/bin/python
# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: backup_publish
short_description: Write a verified backup's manifest and publish it with atomic renames
version_added: "0.1.0"
description:
  - The last step of the backup role, in one call on the database host. The dump and the
    archives were written under temporary names in O(path); this module checks that each
    media or configuration archive decompresses whole, takes its size and sha256, writes the
    manifest (O(manifest) plus C(files)) under a temporary name, then renames the archives,
    the dump and the manifest (last, as a manifest marks a complete backup) to their published
    names, and replaces the C(latest) and C(latest.json) links by a rename each.
  - Every rename is atomic on its own. A failure before the renames leaves the temporary
    files for the caller to remove (the backup role's rescue does) and publishes nothing.
  - Published names and temporary names must be plain file names inside O(path).
  - The manifest is written as C(.tmp-<id>.json) beside the dump's temporary name
    C(.tmp-<id>.<ext>) first, mode 0600, owned by O(owner) when that is set; the dump and
    the archives keep their modes.
author: opsbook engineers (@opsbook)
extends_documentation_fragment:
  - opsbook.webstack.backup_dir
options:
  dump:
    description: Temporary name of the dump (a file, or a directory-format dump's directory) in O(path).
    type: str
    required: true
  name:
    description: Published name of the dump; the manifest is published as C(<name without extension>.json).
    type: str
    required: true
  manifest:
    description:
      - The manifest to write (id, app, time, database, tables, sha256, verification...).
        Its C(file) is set to O(name) and its C(files) to the archives' entries.
    type: dict
    required: true
  archives:
    description: Media and configuration archives to publish with the dump, gzip-compressed tar files.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Key of the archive under C(files) in the manifest (C(media), C(config-app1)).
        type: str
        required: true
      src:
        description: Its temporary name in O(path).
        type: str
        required: true
      dest:
        description: Its published name in O(path).
        type: str
        required: true
  bundle:
    description:
      - Temporary name in O(path) of an uncompressed tar holding the archives as
        C(<archives[].name>.tar.gz) (the backup role sends the media and configuration archives
        from the controller in one copy). Each is checked as it is extracted to its
        O(archives[].src) name, mode 0600, owned by O(owner); the bundle is removed afterwards.
      - A member that is not one of O(archives), is not a regular file, or is missing fails the
        module; nothing is published.
    type: str
  owner:
    description: Owner (and group) of the manifest and links; the current user when empty.
    type: str
    default: ""
  rotate:
    description:
      - Once the backup is published, rotate the app's published backups in O(path) in the same
        call, as M(opsbook.webstack.backup_retention) does (the same code; manifests first, the newest
        verified backup never deleted). The policy is checked before anything is published.
      - A rotation failure after publication fails the module with a message that says the
        backup was published; RV(published) lists it.
    type: dict
    suboptions:
      app:
        description: The app whose backups are rotated; the manifests are C(<app>-<id>.json).
        type: str
        required: true
      policy:
        description:
          - Retention rules, as M(opsbook.webstack.backup_retention)'s
            O(opsbook.webstack.backup_retention#module:policy).
        type: dict
        default: {}
      policy_name:
        description: The variable that sets O(rotate.policy), named in error messages.
        type: str
        default: backup_retention
  release_lock:
    description:
      - The token of the backup lock (C(<path>/.lock)) this run took with
        O(opsbook.webstack.pg_backup_dump#module:prepare), released at the end of the call whatever happened
        (publication and rotation ran under it). A lock another token holds is left alone;
        nothing is released in check mode.
    type: str
attributes:
  check_mode:
    support: full
    description:
      - Reports what would be published; nothing is read, written or renamed. With O(rotate),
        RV(rotation) plans with this backup counted as published and says what would be deleted.
"""

EXAMPLES = r"""
- name: Publish backup 20261129T030000Z of journal
  opsbook.webstack.backup_publish:
    path: /var/backups/opsbook/journal
    dump: .tmp-20261129T030000Z.dump
    name: journal-20261129T030000Z.dump
    manifest: "{{ manifest_data }}"
    archives:
      - {name: media, src: .tmp-20261129T030000Z-media.tar.gz, dest: journal-20261129T030000Z-media.tar.gz}
    owner: postgres
"""

RETURN = r"""
manifest:
  description: The manifest as written.
  returned: success
  type: dict
published:
  description: Published paths in the order they were renamed, the manifest last.
  returned: always
  type: list
  elements: str
rotation:
  description:
    - With O(rotate), what rotation did (in check mode, would do), as
      M(opsbook.webstack.backup_retention) returns it.
  returned: success, with O(rotate)
  type: dict
  contains:
    plan:
      description: The plan, newest first, with the reasons each backup is kept or deleted.
      type: dict
    deleted:
      description: Paths deleted (in check mode, that would be), manifests first.
      type: list
      elements: str
    kept:
      description: The manifests of the backups kept, newest first.
      type: list
      elements: dict
    summary:
      description: One line for people, naming each backup kept and deleted and why.
      type: str
rotation_plan:
  description: The rotation's plan when rotation failed while deleting (what it meant to delete).
  returned: when rotation failed after planning
  type: dict
lock_released:
  description: Whether O(release_lock) released the lock.
  returned: always
  type: bool
"""

import contextlib
import hashlib
import json
import os
import pwd
import tarfile
import zlib

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.opsbook.webstack.plugins.module_utils.retention_apply import (
    RetentionApplyError,
    RetentionError,
    apply_retention,
    check_policy,
    release_backup_lock,
)

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


def publish(module: AnsibleModule, published: list[str]) -> dict:
    """Check, write the manifest, rename; the manifest written. Raises PublishError or OSError
    (PublishError before the first rename: nothing was published)."""
    p = module.params
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
    if module.check_mode:
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


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            dump=dict(type="str", required=True),
            name=dict(type="str", required=True),
            manifest=dict(type="dict", required=True),
            archives=dict(
                type="list",
                elements="dict",
                default=[],
                options=dict(
                    name=dict(type="str", required=True),
                    src=dict(type="str", required=True),
                    dest=dict(type="str", required=True),
                ),
            ),
            bundle=dict(type="str"),
            owner=dict(type="str", default=""),
            rotate=dict(
                type="dict",
                options=dict(
                    app=dict(type="str", required=True),
                    policy=dict(type="dict", default={}),
                    policy_name=dict(type="str", default="backup_retention"),
                ),
            ),
            release_lock=dict(type="str", no_log=False),
        ),
        supports_check_mode=True,
    )
    p = module.params
    published: list[str] = []
    result: dict = {}
    failure = None
    try:
        manifest = publish(module, published)
        result = dict(changed=True, manifest=manifest)
    except PublishError as exc:
        failure = str(exc)
    if failure is None and p["rotate"]:
        # Under the backup lock, after publication: the new backup counts (check mode: as pending).
        pending = {"id": manifest.get("id"), "time": manifest.get("time")} if module.check_mode else None
        try:
            result["rotation"] = apply_retention(
                p["path"], p["rotate"]["app"], p["rotate"]["policy"], pending=pending, check_mode=module.check_mode
            )
        except (RetentionError, RetentionApplyError) as exc:
            if getattr(exc, "plan", None) is not None:
                result["rotation_plan"] = exc.plan
            state = "would be published" if module.check_mode else "was published"
            failure = f"backup {manifest.get('id')} {state} ({published[-1]}); rotation failed: {exc}"
    released, lock_failure = release_backup_lock(p["path"], p["release_lock"], module.check_mode)
    if lock_failure:
        failure = f"{failure}; {lock_failure}" if failure else lock_failure
    if failure:
        module.fail_json(msg=failure, published=published, lock_released=released, **result)
    module.exit_json(published=published, lock_released=released, **result)


if __name__ == "__main__":
    main()
