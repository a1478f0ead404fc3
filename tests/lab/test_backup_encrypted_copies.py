"""Encrypted off-host copies on the lab (issue 23 item 2): age on db1 with public keys only, the
identity on the controller. The copy on the store (lb1) is ciphertext; a drill decrypts it through
a pipe and restores it; a restore without the key, or with a wrong one, stops before any change;
with the key it restores.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from pathlib import Path

import pytest
from lab_helpers import LAB, ansible_playbook, lab_exec

BACKUP_DIR = "/var/backups/opsbook/journal"
ENC_DIR = f"{BACKUP_DIR}/encrypted"
# A store directory of its own, so test_backup_copy's copies are not touched.
STORE_DIR = "/srv/opsbook-backups/journal-encrypted"
pytestmark = pytest.mark.lab


def keygen(directory: Path, name: str) -> tuple[Path, str]:
    identity = directory / f"{name}.txt"
    subprocess.run(["age-keygen", "-o", str(identity)], check=True, capture_output=True)
    public = subprocess.run(["age-keygen", "-y", str(identity)], check=True, capture_output=True, text=True).stdout
    return identity, public.strip()


def databases() -> list[str]:
    out = lab_exec("db1", "psql", "-Atc", "SELECT datname FROM pg_database ORDER BY 1", user="postgres").stdout
    return out.split()


@pytest.fixture(scope="module")
def keys(lab, tmp_path_factory):
    directory = tmp_path_factory.mktemp("age")
    return keygen(directory, "ops"), keygen(directory, "stranger")


@pytest.fixture(scope="module")
def encrypted(keys):
    (_identity, public), _ = keys
    lab_exec("lb1", "rm", "-rf", STORE_DIR)
    copy = ["-e", "backup_store_enabled=true", "-e", f"backup_store_path={STORE_DIR}"]
    recipients = ["-e", json.dumps({"backup_encrypt_recipients": [public]})]
    started = time.monotonic()
    result, _ = ansible_playbook("backup.yml", "-e", "backup_id=e1", *copy, *recipients)
    assert result.returncode == 0, result.stdout[-5000:]
    return {"copy": copy, "recipients": recipients, "backup_seconds": time.monotonic() - started}


def test_the_copy_on_the_store_is_age_ciphertext_of_the_verified_backup(encrypted, keys):
    (identity, _public), _ = keys
    local = json.loads(lab_exec("db1", "cat", f"{BACKUP_DIR}/journal-e1.json").stdout)
    stored = json.loads(lab_exec("lb1", "cat", f"{STORE_DIR}/journal-e1.json").stdout)
    names = lab_exec("lb1", "ls", STORE_DIR).stdout.split()
    # Every data file there is ciphertext; no plaintext dump or archive left the db host.
    assert "journal-e1.dump.age" in names and "journal-e1.dump" not in names
    assert [n for n in names if n.startswith("journal-e1-")] and all(
        n.endswith(".age") for n in names if not n.endswith(".json")
    )
    head = lab_exec("lb1", "head", "-c", "22", f"{STORE_DIR}/journal-e1.dump.age").stdout
    assert head == "age-encryption.org/v1\n"
    assert stored["encryption"]["plaintext"]["sha256"] == local["sha256"]
    assert set(stored["files"]) == set(local["files"])
    # Decrypted where the key is, to a pipe: exactly the dump the backup role verified.
    cipher = subprocess.run(
        ["docker", "exec", f"{LAB}-lb1", "cat", f"{STORE_DIR}/journal-e1.dump.age"], capture_output=True, check=True
    ).stdout
    assert hashlib.sha256(cipher).hexdigest() == stored["sha256"]
    plain = subprocess.run(["age", "-d", "-i", str(identity)], input=cipher, capture_output=True, check=True).stdout
    assert plain.startswith(b"PGDMP") and hashlib.sha256(plain).hexdigest() == local["sha256"]
    # The db host holds no identity: only the public key is in the encrypted manifest.
    found = lab_exec("db1", "grep", "-rl", "AGE-SECRET-KEY", "/var/backups", "/var/lib/postgresql", check=False)
    assert found.stdout == ""


def test_malformed_recipients_are_refused_before_anything_changes(encrypted, keys):
    (identity, _public), _ = keys
    secret = next(line for line in identity.read_text().splitlines() if line.startswith("AGE-SECRET-KEY-"))
    before = lab_exec("lb1", "ls", "-l", "--time-style=full-iso", STORE_DIR).stdout
    bad = ["-e", json.dumps({"backup_encrypt_recipients": ["age1notakey", secret]})]
    result, _ = ansible_playbook("backup_copy.yml", *encrypted["copy"], *bad)
    assert result.returncode != 0
    assert "backup_encrypt_recipients[0], backup_encrypt_recipients[1]" in result.stdout
    assert secret not in result.stdout
    assert lab_exec("lb1", "ls", "-l", "--time-style=full-iso", STORE_DIR).stdout == before


def test_a_restore_without_the_key_or_with_a_wrong_key_stops_before_any_change(encrypted, keys):
    _, (stranger, _) = keys
    before = databases()
    base = ["-e", "restore_confirm=true", "-e", f"restore_backup_dir={ENC_DIR}", "-e", "restore_backup=e1"]
    result, _ = ansible_playbook("restore.yml", *base)
    assert result.returncode != 0
    assert "is encrypted with age" in result.stdout and "Set restore_decrypt_identity" in result.stdout
    assert "Nothing was changed." in result.stdout
    result, _ = ansible_playbook("restore.yml", *base, "-e", f"restore_decrypt_identity={stranger}")
    assert result.returncode != 0
    assert f"restore_decrypt_identity ({stranger}) does not decrypt backup e1" in result.stdout
    assert databases() == before
    assert lab_exec("db1", "ls", "-A", ENC_DIR).stdout.count(".decrypted") == 0


def test_a_drill_decrypts_through_a_pipe_and_restores(encrypted, keys):
    (identity, _), _ = keys
    before = databases()
    result, recap = ansible_playbook(
        "restore.yml", "-e", "restore_mode=drill", "-e", f"restore_backup_dir={ENC_DIR}", "-e", "restore_backup=e1",
        "-e", f"restore_decrypt_identity={identity}",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-5000:]
    assert "Drill: backup e1 restored into a scratch database" in result.stdout
    assert "every count matching" in result.stdout and "through a pipe (no plaintext file)" in result.stdout
    assert databases() == before
    assert recap["db1"] == 0


def test_a_restore_with_the_key_restores_the_backup(encrypted, keys):
    (identity, _), _ = keys
    local = json.loads(lab_exec("db1", "cat", f"{BACKUP_DIR}/journal-e1.json").stdout)
    kept = [d for d in databases() if d.startswith("journal_pre_restore_")]
    result, _ = ansible_playbook(
        "restore.yml", "-e", "restore_confirm=true", "-e", f"restore_backup_dir={ENC_DIR}", "-e", "restore_backup=e1",
        "-e", f"restore_decrypt_identity={identity}",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-5000:]
    assert "journal now holds backup e1" in result.stdout
    assert len([d for d in databases() if d.startswith("journal_pre_restore_")]) == len(kept) + 1
    table, rows = next((t, n) for t, n in sorted(local["tables"].items()) if n)
    schema, name = table.split(".", 1)
    count = lab_exec(
        "db1", "psql", "-d", "journal", "-Atc", f'SELECT count(*) FROM "{schema}"."{name}"', user="postgres"
    )
    assert int(count.stdout) == rows
    # The decrypted copy is gone from the db host.
    assert ".decrypted" not in lab_exec("db1", "ls", "-A", ENC_DIR).stdout
