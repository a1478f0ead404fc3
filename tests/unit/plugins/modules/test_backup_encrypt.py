"""opsbook.webstack.backup_encrypt with the real age: ciphertext only, decryptable by the identity, idempotent."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from ansible_collections.opsbook.webstack.plugins.module_utils.age_crypt import AGE_MAGIC, check_recipients
from module_runner import run_module

APP = "journal"
pytestmark = pytest.mark.skipif(shutil.which("age") is None, reason="age is not installed (scripts/bootstrap.sh)")


def keygen(directory: Path, name: str) -> tuple[Path, str]:
    """An identity file (0600, as age-keygen writes it) and its public key."""
    identity = directory / f"{name}.txt"
    subprocess.run(["age-keygen", "-o", str(identity)], check=True, capture_output=True)
    public = subprocess.run(["age-keygen", "-y", str(identity)], check=True, capture_output=True, text=True).stdout
    return identity, public.strip()


def publish(directory: Path, backup_id: str) -> dict:
    dump = directory / f"{APP}-{backup_id}.dump"
    dump.write_bytes(b"PGDMP" + os.urandom(4096))
    media = directory / f"{APP}-{backup_id}-media.tar.gz"
    media.write_bytes(os.urandom(512))
    manifest = {
        "id": backup_id, "app": APP, "time": "2026-12-06T03:00:00+00:00", "file": dump.name, "verified": True,
        "sha256": hashlib.sha256(dump.read_bytes()).hexdigest(), "size": dump.stat().st_size,
        "files": {"media": {"file": media.name, "size": 512, "sha256": hashlib.sha256(media.read_bytes()).hexdigest()}},
    }  # fmt: skip
    (directory / f"{APP}-{backup_id}.json").write_text(json.dumps(manifest))
    return manifest


def decrypt(path: Path, identity: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["age", "-d", "-i", str(identity), str(path)], capture_output=True)


@pytest.fixture
def keys(tmp_path):
    keydir = tmp_path / "keys"
    keydir.mkdir()
    return keygen(keydir, "a"), keygen(keydir, "b")


def encrypt(directory: Path, backups: list, recipients: list, *, check_mode: bool = False):
    args = {"path": str(directory), "app": APP, "backups": backups, "recipients": recipients}
    return run_module("backup_encrypt", args, check_mode=check_mode)


def test_encrypts_every_file_to_the_recipients_and_writes_a_manifest_of_the_ciphertext(tmp_path, keys):
    (identity, public), (other_identity, _other) = keys
    backups = tmp_path / "backups"
    backups.mkdir()
    source = publish(backups, "20261206T030000Z")

    result = encrypt(backups, [source], [public])

    assert not result.failed, result.msg
    assert result.changed and result["encrypted"] == ["20261206T030000Z"]
    view_dir = backups / "encrypted"
    assert oct(view_dir.stat().st_mode & 0o777) == "0o700"
    view = json.loads((view_dir / f"{APP}-20261206T030000Z.json").read_text())
    assert view == result["backups"][0]
    for plain_part, part in ((source, view), (source["files"]["media"], view["files"]["media"])):
        cipher = view_dir / part["file"]
        assert part["file"] == plain_part["file"] + ".age"
        data = cipher.read_bytes()
        assert data.startswith(AGE_MAGIC) and b"PGDMP" not in data[:64]
        assert oct(cipher.stat().st_mode & 0o777) == "0o600"
        assert part["sha256"] == hashlib.sha256(data).hexdigest() and part["size"] == len(data)
        # The identity decrypts it to the verified plaintext; another identity cannot.
        out = decrypt(cipher, identity)
        assert out.returncode == 0 and hashlib.sha256(out.stdout).hexdigest() == plain_part["sha256"]
        wrong = decrypt(cipher, other_identity)
        assert wrong.returncode != 0 and b"no identity matched" in wrong.stderr
    assert view["encryption"]["recipients"] == [public]
    assert view["encryption"]["plaintext"]["sha256"] == source["sha256"]
    assert view["encryption"]["plaintext"]["files"]["media"]["sha256"] == source["files"]["media"]["sha256"]
    assert not [p for p in view_dir.iterdir() if p.name.startswith(".tmp-")]


def test_second_run_changes_nothing_and_new_recipients_encrypt_again(tmp_path, keys):
    (identity, public), (other_identity, other) = keys
    backups = tmp_path / "backups"
    backups.mkdir()
    source = publish(backups, "20261206T030000Z")
    first = encrypt(backups, [source], [public])
    before = (backups / "encrypted" / (source["file"] + ".age")).read_bytes()

    again = encrypt(backups, [source], [public])
    assert not again.failed and not again.changed and again["encrypted"] == []
    assert again["backups"] == first["backups"]
    assert (backups / "encrypted" / (source["file"] + ".age")).read_bytes() == before

    # Check mode names what rotating the recipients would encrypt, and writes nothing.
    check = encrypt(backups, [source], [public, other], check_mode=True)
    assert check.changed and check["encrypted"] == ["20261206T030000Z"]
    assert (backups / "encrypted" / (source["file"] + ".age")).read_bytes() == before

    rotated = encrypt(backups, [source], [public, other])
    assert rotated.changed and rotated["encrypted"] == ["20261206T030000Z"]
    cipher = backups / "encrypted" / (source["file"] + ".age")
    assert decrypt(cipher, identity).returncode == 0 and decrypt(cipher, other_identity).returncode == 0


def test_rotated_backups_lose_their_encrypted_files(tmp_path, keys):
    (_identity, public), _ = keys
    backups = tmp_path / "backups"
    backups.mkdir()
    old = publish(backups, "20261205T030000Z")
    new = publish(backups, "20261206T030000Z")
    encrypt(backups, [old, new], [public])

    result = encrypt(backups, [new], [public])

    assert result.changed and result["pruned"] == ["20261205T030000Z"] and result["encrypted"] == []
    assert sorted(p.name for p in (backups / "encrypted").iterdir()) == sorted(
        [f"{APP}-20261206T030000Z.json", new["file"] + ".age", new["files"]["media"]["file"] + ".age"]
    )


def test_a_file_changed_since_verification_is_not_encrypted(tmp_path, keys):
    (_identity, public), _ = keys
    backups = tmp_path / "backups"
    backups.mkdir()
    source = publish(backups, "20261206T030000Z")
    dump = backups / source["file"]
    dump.write_bytes(dump.read_bytes()[:-1] + b"\0")

    result = encrypt(backups, [source], [public])

    assert result.failed
    assert "changed since it was verified" in result.msg and source["file"] in result.msg
    assert not (backups / "encrypted" / f"{APP}-20261206T030000Z.json").exists()
    assert not (backups / "encrypted" / (source["file"] + ".age")).exists()


def test_malformed_recipients_are_refused_naming_the_variable(tmp_path, keys):
    (identity, public), _ = keys
    backups = tmp_path / "backups"
    backups.mkdir()
    source = publish(backups, "20261206T030000Z")
    secret = [line for line in identity.read_text().splitlines() if line.startswith("AGE-SECRET-KEY-")][0]

    for bad, expect in (
        ([public[:-1]], "backup_encrypt_recipients[0]"),
        (["ssh-ed25519 AAAA"], "not an age public key"),
        ([public, public], "twice"),
        ([secret], "a private key"),
        ([], "empty"),
    ):
        result = encrypt(backups, [source], bad)
        assert result.failed and expect in result.msg, (bad, result.msg)
        assert secret not in result.msg  # the role's input check refuses it before any module sees it
        assert not (backups / "encrypted").exists()
    assert check_recipients("age1x") == [
        "backup_encrypt_recipients must be a list of age public keys (age1...), got str"
    ]
