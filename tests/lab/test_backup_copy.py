"""Off-host copies of backups on the lab: to the backup store (lb1, rsync over SSH) and to S3.

S3 is a real S3-compatible server (moto's server mode, from PyPI) started on the controller
and listening on the lab network's gateway, so db1 reaches it as it would a real endpoint.
Its IAM authentication is on: a wrong secret is refused as by AWS.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from lab_helpers import BIN, LAB, OUTPUT, ansible_playbook, lab_exec

BACKUP_DIR = "/var/backups/opsbook/journal"
STORE_DIR = "/srv/opsbook-backups/journal"
STORE = ["-e", "backup_store_enabled=true"]
BUCKET = "opsbook-backups"
pytestmark = pytest.mark.lab


def sha256_in(host: str, path: str) -> str:
    return lab_exec(host, "sha256sum", path).stdout.split()[0]


def manifest(name: str) -> dict:
    return json.loads(lab_exec("db1", "cat", f"{BACKUP_DIR}/{name}").stdout)


def flip_a_byte(host: str, path: str) -> None:
    """Change one byte in the middle of a file, keeping its size and mtime."""
    script = (
        'f="$1"; m=$(stat -c %Y "$f"); s=$(stat -c %s "$f"); o=$((s / 2)); '
        'b=$(dd if="$f" bs=1 skip=$o count=1 2>/dev/null | od -An -tu1 | tr -d " "); '
        'printf "$(printf "\\\\%03o" $(( (b + 1) % 256 )))" | dd of="$f" bs=1 seek=$o conv=notrunc 2>/dev/null; '
        'touch -d "@$m" "$f"'
    )
    lab_exec(host, "bash", "-c", script, "flip", path)


@pytest.fixture(scope="module")
def backed_up(lab):
    lab_exec("db1", "rm", "-rf", BACKUP_DIR)
    lab_exec("lb1", "rm", "-rf", STORE_DIR)
    result, _ = ansible_playbook("backup.yml", "-e", "backup_id=k1", *STORE)
    assert result.returncode == 0, result.stdout[-5000:]
    return result


def test_the_store_copy_has_the_manifests_sha256_and_a_rerun_copies_nothing(backed_up):
    data = manifest("journal-k1.json")
    assert sha256_in("lb1", f"{STORE_DIR}/journal-k1.dump") == data["sha256"]
    assert sha256_in("lb1", f"{STORE_DIR}/journal-k1.json") == sha256_in("db1", f"{BACKUP_DIR}/journal-k1.json")
    assert '"backup_copy_store"' in backed_up.stdout and '"ok": true' in backed_up.stdout  # set_stats
    result, recap = ansible_playbook("backup_copy.yml", *STORE)
    assert result.returncode == 0, result.stdout[-5000:]
    assert recap["db1"] == 0, result.stdout[-5000:]


KEY = ["-i", "/var/lib/postgresql/.ssh/opsbook_backup_store_ed25519", "-o", "BatchMode=yes",
       "-o", "UserKnownHostsFile=/var/lib/postgresql/.ssh/opsbook_backup_known_hosts"]  # fmt: skip


def test_the_store_key_can_only_rsync_into_the_store_directory(backed_up):
    line = lab_exec("lb1", "cat", "/var/lib/opsbook-backup/.ssh/authorized_keys").stdout
    assert line.startswith(f'restrict,command="/usr/bin/rrsync -wo -no-del -munge {STORE_DIR}" ssh-ed25519 ')
    # Write only, no deletion: the db host's key can neither read a copy back nor delete one.
    rsh = "--rsh=ssh " + " ".join(KEY)
    read = lab_exec("db1", "rsync", rsh, "opsbook-backup@lb1:journal-k1.json", "/tmp/k1-read.json",
                    user="postgres", check=False)  # fmt: skip
    assert read.returncode != 0 and lab_exec("db1", "test", "-e", "/tmp/k1-read.json", check=False).returncode == 1
    lab_exec("db1", "mkdir", "-p", "/tmp/empty-store", user="postgres")
    wipe = lab_exec("db1", "rsync", "-r", "--delete", rsh, "/tmp/empty-store/", "opsbook-backup@lb1:",
                    user="postgres", check=False)  # fmt: skip
    lab_exec("db1", "rmdir", "/tmp/empty-store")
    assert wipe.returncode != 0, wipe.stdout + wipe.stderr
    assert "journal-k1.dump" in lab_exec("lb1", "ls", STORE_DIR).stdout
    # The db host's SSH trusts exactly the store's host key, read through Ansible.
    host_key = lab_exec("lb1", "cat", "/etc/ssh/ssh_host_ed25519_key.pub").stdout.split()[1]
    known = lab_exec("db1", "cat", "/var/lib/postgresql/.ssh/opsbook_backup_known_hosts").stdout
    assert known.split() == ["lb1", "ssh-ed25519", host_key]
    shell = lab_exec(
        "db1", "ssh", "-i", "/var/lib/postgresql/.ssh/opsbook_backup_store_ed25519", "-o", "BatchMode=yes",
        "-o", "UserKnownHostsFile=/var/lib/postgresql/.ssh/opsbook_backup_known_hosts",
        "opsbook-backup@lb1", "cat /etc/passwd", user="postgres", check=False,
    )  # fmt: skip
    assert "root:" not in shell.stdout


def test_check_mode_lists_the_missing_copy_and_copies_nothing(backed_up):
    lab_exec("lb1", "rm", f"{STORE_DIR}/journal-k1.dump", f"{STORE_DIR}/journal-k1.json")
    check, recap = ansible_playbook("backup_copy.yml", "--check", *STORE)
    assert check.returncode == 0, check.stdout[-5000:]
    assert re.search(r"Would copy journal-k1\.dump, .*journal-k1\.json to backup_store lb1 ", check.stdout)
    assert recap["db1"] > 0
    left = lab_exec("lb1", "ls", STORE_DIR).stdout.split()
    assert "journal-k1.dump" not in left and "journal-k1.json" not in left, left
    result, _ = ansible_playbook("backup_copy.yml", *STORE)
    assert result.returncode == 0, result.stdout[-5000:]
    assert sha256_in("lb1", f"{STORE_DIR}/journal-k1.dump") == manifest("journal-k1.json")["sha256"]


def test_a_damaged_store_copy_is_detected_and_copied_again(backed_up):
    flip_a_byte("lb1", f"{STORE_DIR}/journal-k1.dump")
    good = manifest("journal-k1.json")["sha256"]
    assert sha256_in("lb1", f"{STORE_DIR}/journal-k1.dump") != good
    result, recap = ansible_playbook("backup_copy.yml", *STORE)
    assert result.returncode == 0, result.stdout[-5000:]
    assert "journal-k1.dump there has sha256" in result.stdout
    assert recap["db1"] > 0
    assert sha256_in("lb1", f"{STORE_DIR}/journal-k1.dump") == good


def test_a_copy_that_does_not_match_its_manifest_fails_naming_the_store(backed_up):
    # The local file no longer matches its manifest (as a transfer corrupting it would make
    # the copy): the copy is hashed on the store and refused, the local backup stays.
    local = f"{BACKUP_DIR}/journal-k1.dump"
    lab_exec("db1", "cp", "-p", local, "/tmp/k1.dump.good")
    lab_exec("lb1", "rm", f"{STORE_DIR}/journal-k1.dump", f"{STORE_DIR}/journal-k1.json")
    flip_a_byte("db1", local)
    try:
        result, _ = ansible_playbook("backup_copy.yml", *STORE)
    finally:
        lab_exec("db1", "cp", "-p", "/tmp/k1.dump.good", local)
    assert result.returncode != 0
    assert "Copy to backup_store lb1 (opsbook-backup@lb1:/srv/opsbook-backups/journal) failed" in result.stdout
    assert "does not match its manifest" in result.stdout
    assert "journal-k1.json" not in lab_exec("lb1", "ls", STORE_DIR).stdout  # never marked complete
    assert "journal-k1.dump" in lab_exec("db1", "ls", BACKUP_DIR).stdout


def test_a_hostile_manifest_on_the_store_deletes_nothing_outside_it(backed_up):
    """Issue 19 item 2: manifests on the store come through the db host's key; one naming
    ../../../etc/... must not make the store's retention (as root) delete there."""
    canary = "/etc/opsbook-canary"
    hostile = {"id": "evil", "app": "journal", "time": "2020-01-01T00:00:00+00:00", "verified": True,
               "file": "../../../etc/opsbook-canary", "sha256": "0" * 64, "size": 1, "files": {}}  # fmt: skip
    lab_exec("lb1", "sh", "-c", f"echo keep > {canary}")
    lab_exec("lb1", "python3", "-c", f"open('{STORE_DIR}/journal-evil.json', 'w').write({json.dumps(hostile)!r})")
    try:
        result, _ = ansible_playbook("backup_copy.yml", *STORE, "-e", '{"backup_store_retention": {"keep_last": 1}}')
        assert lab_exec("lb1", "cat", canary).stdout == "keep\n"
        held = lab_exec("lb1", "ls", STORE_DIR).stdout.split()
    finally:
        lab_exec("lb1", "rm", "-f", canary, f"{STORE_DIR}/journal-evil.json")
    # Refused as the local rotation refuses it: before anything is deleted, naming the manifest.
    assert result.returncode != 0
    assert "names '../../../etc/opsbook-canary', which is not a file of /srv/opsbook-backups/journal" in result.stdout
    assert "nothing was deleted" in result.stdout
    assert {"journal-k1.dump", "journal-k1.json", "journal-evil.json"} <= set(held), held


# --- S3 --------------------------------------------------------------------------------


def _gateway() -> str:
    fmt = "{{(index .IPAM.Config 0).Gateway}}"
    return subprocess.run(
        ["docker", "network", "inspect", LAB, "-f", fmt], capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory):
    """moto_server on the lab network's gateway, IAM auth on; yields (endpoint, access key, secret)."""
    boto3 = pytest.importorskip("boto3", reason="boto3 is in requirements/controller.txt")
    host = _gateway()
    with __import__("socket").socket() as sock:
        sock.bind((host, 0))
        port = sock.getsockname()[1]
    endpoint = f"http://{host}:{port}"
    OUTPUT.mkdir(exist_ok=True)
    log = (OUTPUT / "moto-server.log").open("w")
    # The first requests (making the user, its key and the bucket) need no credentials;
    # every later one is authenticated against moto's IAM, as AWS would.
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "4"}
    proc = subprocess.Popen([BIN / "moto_server", "-H", host, "-p", str(port)], stdout=log, stderr=log, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail(f"moto_server did not start: see {OUTPUT / 'moto-server.log'}", pytrace=False)
                time.sleep(0.5)
        anon = {"endpoint_url": endpoint, "region_name": "us-east-1"}
        creds = {"aws_access_key_id": "bootstrap", "aws_secret_access_key": "bootstrap"}
        iam = boto3.client("iam", **anon, **creds)
        iam.create_user(UserName="opsbook")
        key = iam.create_access_key(UserName="opsbook")["AccessKey"]
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
        iam.put_user_policy(UserName="opsbook", PolicyName="s3", PolicyDocument=json.dumps(policy))
        s3 = boto3.client(
            "s3", **anon, aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"]
        )
        s3.create_bucket(Bucket=BUCKET)
        yield endpoint, key["AccessKeyId"], key["SecretAccessKey"], s3
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


def s3_vars(tmp_path: Path, endpoint: str, access: str, secret: str) -> list[str]:
    """The S3 settings as an extra-vars file (0600): secrets never go on a command line."""
    path = tmp_path / "s3.json"
    path.write_text(
        json.dumps(
            {
                "backup_s3_enabled": True,
                "backup_s3_bucket": BUCKET,
                "backup_s3_endpoint_url": endpoint,
                "backup_s3_access_key": access,
                "backup_s3_secret_key": secret,
            }
        )
    )
    path.chmod(0o600)
    return ["-e", f"@{path}"]


def test_s3_copy_has_the_manifests_sha256_and_a_rerun_uploads_nothing(backed_up, s3_server, tmp_path):
    endpoint, access, secret, s3 = s3_server
    extra = s3_vars(tmp_path, endpoint, access, secret)
    result, _ = ansible_playbook("backup_copy.yml", *extra)
    assert result.returncode == 0, result.stdout[-5000:]
    assert secret not in result.stdout + result.stderr
    body = s3.get_object(Bucket=BUCKET, Key="journal/journal-k1.dump")["Body"].read()
    assert hashlib.sha256(body).hexdigest() == manifest("journal-k1.json")["sha256"]
    stored = json.loads(s3.get_object(Bucket=BUCKET, Key="journal/journal-k1.json")["Body"].read())
    assert stored["sha256"] == manifest("journal-k1.json")["sha256"]
    again, recap = ansible_playbook("backup_copy.yml", *extra)
    assert again.returncode == 0, again.stdout[-5000:]
    assert recap["db1"] == 0, again.stdout[-5000:]


def test_s3_with_a_wrong_secret_fails_naming_the_bucket_and_never_prints_the_secret(backed_up, s3_server, tmp_path):
    endpoint, access, _, _ = s3_server
    wrong = "wrong-secret-" + "x" * 27
    result, _ = ansible_playbook("backup_copy.yml", "-vvv", *s3_vars(tmp_path, endpoint, access, wrong))
    assert result.returncode != 0
    assert f"Copy to s3://{BUCKET}/journal/ ({endpoint}) failed" in result.stdout
    assert wrong not in result.stdout + result.stderr


def test_s3_without_a_bucket_is_refused_before_anything_changes(backed_up, tmp_path):
    path = tmp_path / "nobucket.json"
    path.write_text(json.dumps({"backup_s3_enabled": True}))
    result, _ = ansible_playbook("backup.yml", "-e", "backup_id=k-nobucket", "-e", f"@{path}")
    assert result.returncode != 0
    assert "backup_s3_bucket must name a bucket" in result.stdout
    assert "journal-k-nobucket" not in lab_exec("db1", "ls", "-A", BACKUP_DIR).stdout
