"""The execution environment builds with ansible-builder, holds its requirements, and runs a playbook
under `ansible-runner run --process-isolation`.

execution-environment.yml names a base image (quay.io) and Galaxy, which this machine cannot reach
(docs/awx.md). The build here derives its definition from that file, keeping its dependencies
(ansible-core, ansible-runner, meta/ee-requirements.txt, meta/ee-bindep.txt, the collections of
requirements.yml) and swapping what is out of reach: the base is the lab's opsbook/debian:bookworm
(scripts/build-images.sh) with apt-get as package manager and a virtualenv Python (Debian disables
ensurepip for the system Python, which ansible-builder's pip step runs); the collections are the
copies the `ansible` package bundles, packed as local tarballs; pip gets the host's CA bundle. The
image is tagged by a hash of its inputs and rebuilt only when they change (about 4 minutes).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
BASE_IMAGE = os.environ.get("OPSBOOK_BASE_IMAGE", "opsbook/debian:bookworm")
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
COLLECTIONS = Path(yaml.__file__).parents[1] / "ansible_collections"


def installed_collection(name: str) -> Path:
    path = COLLECTIONS.joinpath(*name.split("."))
    assert (path / "MANIFEST.json").is_file(), f"{name} is not installed in {COLLECTIONS}"
    return path


def collections_with_dependencies() -> list[Path]:
    wanted = [c["name"] for c in yaml.safe_load((ROOT / "requirements.yml").read_text())["collections"]]
    seen: dict[str, Path] = {}
    while wanted:
        name = wanted.pop()
        if name in seen:
            continue
        seen[name] = installed_collection(name)
        info = json.loads((seen[name] / "MANIFEST.json").read_text())["collection_info"]
        wanted += list(info.get("dependencies") or {})
    return [seen[n] for n in sorted(seen)]


def pack(collection: Path, dest: Path) -> str:
    """A collection artifact from an installed copy: the bundled copies lack files their FILES.json
    lists (the `ansible` package strips tests and CI files), so FILES.json is written anew."""
    manifest = json.loads((collection / "MANIFEST.json").read_text())
    entries = [{"name": ".", "ftype": "dir", "chksum_type": None, "chksum_sha256": None, "format": 1}]
    files = []
    for root, dirs, names in os.walk(collection):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        rel = Path(root).relative_to(collection)
        for d in dirs:
            entries.append(
                {"name": str(rel / d), "ftype": "dir", "chksum_type": None, "chksum_sha256": None, "format": 1}
            )
        for name in sorted(names):
            if rel == Path(".") and name in {"MANIFEST.json", "FILES.json"}:
                continue
            path = Path(root) / name
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            entries.append(
                {
                    "name": str(rel / name),
                    "ftype": "file",
                    "chksum_type": "sha256",
                    "chksum_sha256": digest,
                    "format": 1,
                }
            )
            files.append((path, str(rel / name)))
    files_json = json.dumps({"files": entries, "format": 1}, indent=2).encode()
    manifest["file_manifest_file"]["chksum_sha256"] = hashlib.sha256(files_json).hexdigest()
    info = manifest["collection_info"]
    artifact = dest / f"{info['namespace']}-{info['name']}-{info['version']}.tar.gz"
    with tarfile.open(artifact, "w:gz") as tar:
        for name, data in (("MANIFEST.json", json.dumps(manifest, indent=2).encode()), ("FILES.json", files_json)):
            member = tarfile.TarInfo(name)
            member.size, member.mode = len(data), 0o644
            tar.addfile(member, io.BytesIO(data))
        for entry in entries[1:]:
            if entry["ftype"] == "dir":
                member = tarfile.TarInfo(entry["name"])
                member.type, member.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(member)
        for path, name in files:
            tar.add(path, arcname=name, recursive=False)
    return artifact.name


def lab_definition(collections: list[str], tag: str) -> dict:
    ee = yaml.safe_load((ROOT / "execution-environment.yml").read_text())
    deps = ee["dependencies"]
    deps["python_interpreter"] = {"package_system": "python3-venv", "python_path": "/opt/ee/bin/python3"}
    deps["galaxy"] = {"collections": [{"name": f"collections/{c}", "type": "file"} for c in collections]}
    deps["python"] = "ee-requirements.txt"
    deps["system"] = "ee-bindep.txt"
    ee["images"]["base_image"]["name"] = BASE_IMAGE
    ee["additional_build_files"] = [
        {"src": "collections", "dest": "collections"},
        {"src": "host-ca.crt", "dest": "certs"},
    ]
    ee["additional_build_steps"] = {
        "prepend_base": [
            "RUN apt-get update && apt-get install -y --no-install-recommends python3-venv ca-certificates",
            "COPY _build/certs/host-ca.crt /etc/ssl/host-ca.crt",
            "ENV PIP_CERT=/etc/ssl/host-ca.crt",
            "RUN python3 -m venv /opt/ee",
            "ENV PATH=/opt/ee/bin:$PATH",
        ]
    }
    ee["options"] = {"package_manager_path": "/usr/bin/apt-get", "tags": [tag]}
    return ee


def docker(*args: str, check: bool = True, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, timeout=timeout)


@pytest.fixture(scope="module")
def ee_image(tmp_path_factory) -> str:
    inputs = hashlib.sha256()
    for path in (
        ROOT / "execution-environment.yml",
        ROOT / "meta" / "ee-requirements.txt",
        ROOT / "meta" / "ee-bindep.txt",
    ):
        inputs.update(path.read_bytes())
    collections = collections_with_dependencies()
    for collection in collections:
        inputs.update((collection / "MANIFEST.json").read_bytes())
    inputs.update(Path(__file__).read_bytes())
    tag = f"opsbook-ee:test-{inputs.hexdigest()[:12]}"
    if docker("image", "inspect", tag, check=False).returncode == 0:
        return tag
    assert docker("image", "inspect", BASE_IMAGE, check=False).returncode == 0, (
        f"{BASE_IMAGE} is missing: scripts/build-images.sh builds it"
    )
    work = tmp_path_factory.mktemp("ee")
    (work / "collections").mkdir()
    names = [pack(c, work / "collections") for c in collections]
    shutil.copy(ROOT / "meta" / "ee-requirements.txt", work)
    shutil.copy(ROOT / "meta" / "ee-bindep.txt", work)
    shutil.copy(HOST_CA, work / "host-ca.crt")
    (work / "ee.yml").write_text(yaml.safe_dump(lab_definition(names, tag), sort_keys=False))
    result = subprocess.run(
        [BIN / "ansible-builder", "build", "-f", "ee.yml", "-c", "context", "--container-runtime", "docker",
         "--build-arg", "PKGMGR_PRESERVE_CACHE=always", "-v", "2"],
        cwd=work, capture_output=True, text=True, timeout=1500,
    )  # fmt: skip
    assert result.returncode == 0, f"ansible-builder build failed:\n{result.stdout[-4000:]}\n{result.stderr[-2000:]}"
    # Earlier builds of other inputs are of no further use.
    listed = docker("image", "ls", "--format", "{{.Repository}}:{{.Tag}}", "opsbook-ee").stdout.split()
    stale = [image for image in listed if image.startswith("opsbook-ee:test-") and image != tag]
    if stale:
        docker("image", "rm", *stale, check=False)
    return tag


def test_the_ee_holds_the_python_and_system_requirements(ee_image):
    lines = [line.split("#", 1)[0].strip() for line in (ROOT / "meta" / "ee-requirements.txt").read_text().splitlines()]
    dists = [line.split("[")[0].split("=")[0].split(">")[0].split("<")[0] for line in lines if line]
    packages = [
        line.split()[0]
        for line in (ROOT / "meta" / "ee-bindep.txt").read_text().splitlines()
        if "platform:dpkg" in line and not line.startswith("#")
    ]
    script = f"import importlib.metadata as m, json; print(json.dumps({{d: m.version(d) for d in {dists!r}}}))"
    result = docker("run", "--rm", "--entrypoint", "", ee_image, "python3", "-c", script, check=False)
    assert result.returncode == 0, result.stderr
    versions = json.loads(result.stdout)
    assert set(versions) == set(dists)
    result = docker("run", "--rm", "--entrypoint", "", ee_image, "dpkg-query", "-W", "-f", "${Package} ${Status}\n",
                    *packages, check=False)  # fmt: skip
    installed = {line.split()[0] for line in result.stdout.splitlines() if line.endswith("install ok installed")}
    assert installed == set(packages), result.stdout + result.stderr
    # The image's entrypoint gives the unnamed user a home (ansible-galaxy writes ~/.ansible).
    result = docker("run", "--rm", ee_image, "ansible-galaxy", "collection", "list", "--format", "json")
    assert "Warning" not in result.stderr, result.stderr  # e.g. cryptography 51's DSA deprecation
    listed = {name for path in json.loads(result.stdout).values() for name in path}
    assert {c["name"] for c in yaml.safe_load((ROOT / "requirements.yml").read_text())["collections"]} <= listed


def test_validate_runs_in_the_ee_under_process_isolation(ee_image, tmp_path):
    """The example production inventory, its vault replaced by plain values; validate.yml connects to no host."""
    private = tmp_path / "pd"
    inventory = private / "inventory"
    shutil.copytree(ROOT / "inventories" / "production", inventory, ignore=shutil.ignore_patterns("*.example", "*.md"))
    example = yaml.safe_load(
        (ROOT / "inventories" / "production" / "group_vars" / "all" / "vault.yml.example").read_text()
    )
    (inventory / "group_vars" / "all" / "vault.yml").write_text(yaml.safe_dump({k: f"test-{k}" for k in example}))
    (private / "project").symlink_to(ROOT / "playbooks")  # resolves inside: ROOT is mounted at its own path
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    result = subprocess.run(
        [BIN / "ansible-runner", "run", private, "-p", "validate.yml", "--ident", "ee", "--process-isolation",
         "--process-isolation-executable", "docker", "--container-image", ee_image,
         "--container-volume-mount", f"{ROOT}:{ROOT}:ro"],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    artifacts = private / "artifacts" / "ee"
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert (artifacts / "status").read_text() == "successful"
    command = json.loads((artifacts / "command").read_text())["command"]
    assert command[:2] == ["docker", "run"] and ee_image in command
    events = [json.loads(p.read_text()) for p in (artifacts / "job_events").glob("*.json")]
    ok = {(e["event_data"]["task"], e["event_data"]["host"]) for e in events if e["event"] == "runner_on_ok"}
    # The play runs once, on the first host, and checks the other hosts from there (roles/validate).
    assert ("VALIDATE | Required variables are set", "lb1.prod.example.com") in ok, sorted(ok)
    types = "VALIDATE | App variables have their types on the other hosts"
    checked = {
        e["event_data"].get("res", {}).get("item")
        for e in events
        if e["event"] == "runner_item_on_ok" and e["event_data"]["task"] == types
    }
    assert "db1.prod.example.com" in checked, sorted(map(str, checked))
