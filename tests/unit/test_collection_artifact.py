"""The collection artifact: `ansible-galaxy collection build`, its file list, and galaxy-importer.

The build runs on a copy of the working tree (the files git tracks or would track) into which
decoys are planted where local state piles up: reports, caches, a venv, artifacts, bytecode,
Molecule and test output. galaxy.yml's manifest is an allowlist, so none of them may ship,
nor may tests, Molecule, the benchmarks, the sample app, the scripts, the images or the
inventories (the lab's vault). Every tracked file of the collection's own directories must.

galaxy-importer runs offline as Galaxy would (ansible-doc on every plugin, the roles' READMEs
and metadata, ansible-lint), without ansible-test (it needs a container) and without flake8.
"""

from __future__ import annotations

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
GALAXY = yaml.safe_load((ROOT / "galaxy.yml").read_text())
# What may sit at the top of the artifact.
ALLOWED_TOP = {
    "MANIFEST.json",
    "FILES.json",
    "README.md",
    "CHANGELOG.md",
    "LICENSE",
    "execution-environment.yml",
    "meta",
    "docs",
    "changelogs",
    "plugins",
    "roles",
    "playbooks",
}
# The collection's own directories: every file git tracks there ships.
CONTENT = ("plugins", "roles", "playbooks", "docs", "meta", "changelogs")
NEVER = ("tests", "molecule", "bench", "examples", "scripts", "images", "inventories", "requirements", "reports")
DECOYS = (
    "reports/health-20260101T000000Z.json",
    ".cache/facts/app1",
    ".venv/bin/python",
    "artifacts/1/stdout",
    "tests/output/molecule-deploy.log",
    "bench/results/tmp/run.json",
    "plugins/modules/__pycache__/deploy_lock.cpython-311.pyc",
    "plugins/module_utils/lock.pyc",
    "roles/deploy/files/.pack_wheelhouse.sh.swp",
    "roles/maintenance/.ansible/tmp",
    "docs/.pytest_cache/v/cache/lastfailed",
    "roles/deploy/.ruff_cache/0.17.6/123",
    "plugins/filter/__pycache__/notes.txt",
    "playbooks/collections/ansible_collections/opsbook/webstack/MANIFEST.json",
    "opsbook-webstack-0.0.1.tar.gz",
    "context/_build/requirements.txt",
)


def repository_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return [name for name in listed.split("\0") if name]


def tracked_content() -> set[str]:
    """Tracked files of the collection's directories (the playbooks' collection link is not content)."""
    return {
        name
        for name in repository_files()
        if name.split("/")[0] in CONTENT
        and not name.startswith("playbooks/collections/")
        and (ROOT / name).is_file()
        and not (ROOT / name).is_symlink()
    }


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tree = tmp_path_factory.mktemp("tree")
    for name in repository_files():
        source, target = ROOT / name, tree / name
        if not source.exists() and not source.is_symlink():
            continue  # deleted in the working tree, not yet in the index
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            target.symlink_to(os.readlink(source))
        else:
            shutil.copy2(source, target)
    for decoy in DECOYS:
        (tree / decoy).parent.mkdir(parents=True, exist_ok=True)
        (tree / decoy).write_text("decoy\n")
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        [BIN / "ansible-galaxy", "collection", "build", "--output-path", out, tree],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "ANSIBLE_NOCOLOR": "1"},
    )
    assert result.returncode == 0, f"ansible-galaxy collection build failed:\n{result.stdout}\n{result.stderr}"
    [built] = out.glob("*.tar.gz")
    assert built.name == f"{GALAXY['namespace']}-{GALAXY['name']}-{GALAXY['version']}.tar.gz"
    return built


@pytest.fixture(scope="module")
def members(artifact: Path) -> list[str]:
    with tarfile.open(artifact) as tar:
        return [m.name.removeprefix("./") for m in tar.getmembers() if not m.isdir()]


def test_artifact_leaves_out_everything_but_the_collection(members):
    tops = {name.split("/")[0] for name in members}
    assert tops <= ALLOWED_TOP, f"the artifact holds top-level entries outside the collection: {tops - ALLOWED_TOP}"
    for name in members:
        parts = name.split("/")
        assert parts[0] not in NEVER, name
        assert not any(part.startswith(".") for part in parts), f"hidden file or directory shipped: {name}"
        assert "__pycache__" not in parts and not name.endswith((".pyc", ".tar.gz")), name
        assert not name.startswith("playbooks/collections/"), name
    leaked = [d for d in DECOYS if d in members]
    assert not leaked, f"local state shipped: {leaked}"


def test_artifact_holds_the_collection(members):
    shipped = set(members)
    for required in ("LICENSE", "README.md", "MANIFEST.json", "FILES.json", "meta/runtime.yml"):
        assert required in shipped, f"{required} is not in the artifact"
    for top in ("plugins/modules/", "plugins/filter/", "roles/", "playbooks/", "docs/"):
        assert any(name.startswith(top) for name in members), f"nothing under {top} in the artifact"
    missing = sorted(tracked_content() - shipped)
    assert not missing, f"collection files left out of the artifact (galaxy.yml manifest): {missing[:20]}"


def test_manifest_declares_the_dependencies(artifact):
    with tarfile.open(artifact) as tar:
        manifest = json.load(tar.extractfile("MANIFEST.json"))
    info = manifest["collection_info"]
    assert info["dependencies"] == GALAXY["dependencies"]
    assert info["license"] == ["GPL-3.0-or-later"]
    assert info["repository"] == GALAXY["repository"]


IMPORTER_CFG = """\
[galaxy-importer]
run_ansible_test = false
run_ansible_lint = true
offline_ansible_lint = true
run_ansible_doc = true
run_flake8 = false
check_changelog = true
log_level_main = INFO
ansible_local_tmp = {tmp}/ansible-tmp
tmp_root_dir = {tmp}
"""


def test_galaxy_importer_accepts_the_artifact(artifact, tmp_path):
    config = tmp_path / "galaxy-importer.cfg"
    config.write_text(IMPORTER_CFG.format(tmp=tmp_path))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("GALAXY_IMPORTER_", "ANSIBLE_"))},
        "GALAXY_IMPORTER_CONFIG": str(config),
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "HOME": str(tmp_path),  # ansible-lint and ansible-doc caches, not the user's
    }
    result = subprocess.run(
        [BIN / "python", "-m", "galaxy_importer.main", artifact],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, f"galaxy-importer rejected the artifact:\n{log[-6000:]}"
    assert "Importer processing completed successfully" in log, log[-3000:]
    warnings = [line for line in log.splitlines() if "WARNING" in line or "ERROR" in line]
    assert not warnings, "galaxy-importer warned:\n" + "\n".join(warnings[:40])

    imported = json.loads((tmp_path / "importer_result.json").read_text())
    assert imported["metadata"]["dependencies"] == GALAXY["dependencies"]
    contents = {(c["content_type"], c["content_name"]): c for c in imported["docs_blob"]["contents"]}
    roles = sorted(name for kind, name in contents if kind == "role")
    assert roles == sorted(p.name for p in (ROOT / "roles").iterdir() if p.is_dir())
    for role in roles:
        assert contents[("role", role)]["readme_html"], f"galaxy-importer found no README for role {role}"
    documented = [key for key in contents if key[0] in ("module", "filter")]
    assert len(documented) >= 20, documented
    undocumented = [name for key, name in ((k, k[1]) for k in documented) if not contents[key]["doc_strings"]]
    assert not undocumented, f"ansible-doc gave galaxy-importer no documentation for {undocumented}"
