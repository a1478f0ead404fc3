# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""age encryption of backup copies: recipients, the encrypted view of a backup directory.

The db host encrypts to public keys only (age recipients); the identity (private key) is
never there. Each verified backup gets, under <backup_dir>/encrypted/, its files as
<file>.age and a manifest of the same name as the local one whose file names, sha256 and
sizes are the ciphertext's (what the copies are checked against on the store and in S3),
with the plaintext's under `encryption.plaintext` (what a decryption is checked against).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import subprocess

from ansible_collections.opsbook.webstack.plugins.module_utils.retention import UnsafeNameError, check_name

__all__ = [
    "AGE_MAGIC",
    "EncryptError",
    "check_recipients",
    "encrypt_backup",
    "is_encrypted",
    "prune",
    "view_is_current",
]

# The first line of every age file (binary format; the armored one starts with a PEM line).
AGE_MAGIC = b"age-encryption.org/v1\n"
# An age X25519 recipient: "age1" and 58 bech32 characters (no 1, b, i, o).
RECIPIENT = re.compile(r"^age1[02-9ac-hj-np-z]{58}$")
CHUNK = 1 << 20


class EncryptError(Exception):
    """A backup that cannot be encrypted, named."""


def check_recipients(recipients, name: str = "backup_encrypt_recipients") -> list[str]:
    """Problems with a list of age recipients, each naming the variable and the entry."""
    if not isinstance(recipients, (list, tuple)):
        return [f"{name} must be a list of age public keys (age1...), got {type(recipients).__name__}"]
    problems = []
    for index, value in enumerate(recipients):
        text = value if isinstance(value, str) else repr(value)
        if not isinstance(value, str) or not RECIPIENT.match(value.strip()):
            shown = text if len(text) <= 20 else text[:12] + "..."
            if isinstance(value, str) and value.strip().startswith("AGE-SECRET-KEY-"):
                shown = "AGE-SECRET-KEY-... (a private key: it must never be in the inventory of the db host)"
            problems.append(
                f"{name}[{index}] ({shown}) is not an age public key: expected 'age1' and 58 bech32 characters, "
                "as age-keygen prints after 'Public key:'"
            )
    if isinstance(recipients, (list, tuple)) and len(set(recipients)) != len(recipients):
        problems.append(f"{name} lists a recipient twice")
    return problems


def is_encrypted(path: str) -> bool:
    """Whether the file starts with age's header."""
    with open(path, "rb") as handle:
        return handle.read(len(AGE_MAGIC)) == AGE_MAGIC


def _encrypt_file(src: str, dest: str, recipients: list[str], age: str) -> dict:
    """Encrypt src to dest (0600, written under a temporary name and renamed); sha256/size of both sides."""
    tmp = os.path.join(os.path.dirname(dest), ".tmp-" + os.path.basename(dest))
    argv = [age, "--encrypt", "--output", tmp]
    for recipient in recipients:
        argv += ["--recipient", recipient.strip()]
    plain, size = hashlib.sha256(), 0
    old = os.umask(0o077)
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    finally:
        os.umask(old)
    try:
        with open(src, "rb") as handle:
            while chunk := handle.read(CHUNK):
                plain.update(chunk)
                size += len(chunk)
                proc.stdin.write(chunk)
        proc.stdin.close()
    except BrokenPipeError:
        pass
    err = proc.stderr.read().decode(errors="replace").strip()
    if proc.wait() != 0:
        _unlink(tmp)
        raise EncryptError(f"age could not encrypt {os.path.basename(src)}: {err or 'exit ' + str(proc.returncode)}")
    cipher, csize = hashlib.sha256(), 0
    with open(tmp, "rb") as handle:
        while chunk := handle.read(CHUNK):
            cipher.update(chunk)
            csize += len(chunk)
    os.chmod(tmp, 0o600)
    os.replace(tmp, dest)
    return {"sha256": plain.hexdigest(), "size": size, "cipher_sha256": cipher.hexdigest(), "cipher_size": csize}


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _parts(manifest: dict, where: str) -> list[tuple[str | None, dict]]:
    """(key in files or None for the dump, the part's {file, sha256, size}) for every data file."""
    parts: list[tuple[str | None, dict]] = [(None, manifest)]
    parts += sorted((manifest.get("files") or {}).items())
    for _key, part in parts:
        try:
            check_name(part.get("file"), manifest.get("id", "?"), where)
        except UnsafeNameError as exc:
            raise EncryptError(str(exc)) from None
    return parts


def view_is_current(source: dict, view: dict | None, recipients: list[str], dest: str) -> bool:
    """Whether the encrypted view of a backup is there, to these recipients, of these plaintext files."""
    if not isinstance(view, dict):
        return False
    enc = view.get("encryption") or {}
    if enc.get("format") != "age" or sorted(enc.get("recipients") or []) != sorted(r.strip() for r in recipients):
        return False
    plain = enc.get("plaintext") or {}
    if plain.get("sha256") != source.get("sha256") or plain.get("file") != source.get("file"):
        return False
    for key, part in (source.get("files") or {}).items():
        if ((plain.get("files") or {}).get(key) or {}).get("sha256") != part.get("sha256"):
            return False
    for _key, part in [(None, view)] + sorted((view.get("files") or {}).items()):
        path = os.path.join(dest, str(part.get("file")))
        if not os.path.isfile(path) or os.path.getsize(path) != part.get("size"):
            return False
    return True


def encrypt_backup(path: str, dest: str, app: str, source: dict, recipients: list[str], age: str = "age") -> dict:
    """Write the encrypted view of one backup into dest; return its manifest (written last)."""
    if not str(source.get("id") or ""):
        raise EncryptError("a manifest without an id cannot be encrypted")
    parts = _parts(source, path)
    view = json.loads(json.dumps(source))
    plaintext: dict = {"file": source["file"], "sha256": source.get("sha256"), "size": source.get("size"), "files": {}}
    for key, part in parts:
        src = os.path.join(path, part["file"])
        if os.path.isdir(src):
            raise EncryptError(
                f"backup {source['id']}'s {part['file']} is a directory-format dump: encrypted copies need "
                "backup_format custom (one file)"
            )
        if not os.path.isfile(src):
            raise EncryptError(f"backup {source['id']} lists {part['file']}, which is not in {path}")
        out = _encrypt_file(src, os.path.join(dest, part["file"] + ".age"), recipients, age)
        want = str(part.get("sha256") or "").lower().removeprefix("sha256:")
        if out["sha256"] != want:
            _unlink(os.path.join(dest, part["file"] + ".age"))
            raise EncryptError(
                f"backup {source['id']}'s {part['file']} has sha256 {out['sha256']}; its manifest says {want}: "
                "it changed since it was verified, and is not copied"
            )
        target = view if key is None else view["files"][key]
        target.update({"file": part["file"] + ".age", "sha256": out["cipher_sha256"], "size": out["cipher_size"]})
        record = {"file": part["file"], "sha256": want, "size": part.get("size")}
        if key is None:
            plaintext.update(record)
        else:
            plaintext["files"][key] = record
    view["encryption"] = {
        "format": "age",
        "recipients": sorted(r.strip() for r in recipients),
        "plaintext": plaintext,
    }
    name = f"{app}-{source['id']}.json"
    tmp = os.path.join(dest, ".tmp-" + name)
    old = os.umask(0o077)
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(view, handle, indent=2, sort_keys=True)
    finally:
        os.umask(old)
    os.replace(tmp, os.path.join(dest, name))
    return view


def prune(dest: str, app: str, keep_ids: set[str], views: dict[str, dict], check_mode: bool) -> list[str]:
    """Remove the encrypted views of backups no longer kept (manifest first), and stale temporary files."""
    pruned = []
    for backup_id, view in sorted(views.items()):
        if backup_id in keep_ids:
            continue
        pruned.append(backup_id)
        if check_mode:
            continue
        _unlink(os.path.join(dest, f"{app}-{backup_id}.json"))
        for _key, part in [(None, view)] + sorted((view.get("files") or {}).items()):
            name = str(part.get("file") or "")
            try:
                check_name(name, backup_id, dest)
            except UnsafeNameError:
                continue
            _unlink(os.path.join(dest, name))
    if not check_mode:
        for entry in os.listdir(dest):
            if entry.startswith(".tmp-"):
                _unlink(os.path.join(dest, entry))
    return pruned
