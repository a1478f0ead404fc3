"""The collection as a user installs it: built, installed offline with its dependencies, run by FQCN.

Galaxy is not reachable here, so the dependencies come as tarballs made from the copies the
`ansible` package installed in the venv (ansible-galaxy builds each from a galaxy.yml written
from its MANIFEST.json). The install goes into an empty directory with Ansible's own search of
sys.path turned off, so nothing of the venv's bundle or of the repository can stand in; the
playbooks then run from an empty directory with ANSIBLE_CONFIG pointing at an empty file and
ANSIBLE_COLLECTIONS_PATH at that directory only. community.docker is installed too: it is
not a dependency of the collection but the lab inventory's connection plugin.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import ansible_collections
import pytest
import yaml
from ansible.galaxy.dependency_resolution.versioning import meets_requirements
from lab_helpers import BIN, ROOT

pytestmark = pytest.mark.lab
GALAXY = yaml.safe_load((ROOT / "galaxy.yml").read_text())
# The lab inventory's connection (inventories/lab/group_vars/lab_containers/connection.yml).
LAB_CONNECTION = "community.docker"
GALAXY_KEYS = (
    "namespace", "name", "version", "readme", "authors", "description", "license", "license_file", "tags",
    "dependencies", "repository", "documentation", "homepage", "issues",
)  # fmt: skip


def bundled(name: str) -> Path:
    """The venv's copy of a collection (the `ansible` package), never the repository's link."""
    namespace, collection = name.split(".")
    for base in ansible_collections.__path__:
        path = Path(base) / namespace / collection
        if not Path(base).is_relative_to(ROOT / "playbooks") and (path / "MANIFEST.json").is_file():
            return path
    raise AssertionError(f"{name} is not installed in the venv; install the `ansible` package")


def run(argv: list, cwd: Path, env: dict, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def clean_env(tmp: Path, **extra: str) -> dict[str, str]:
    """No ANSIBLE_* or report setting from outside; an empty ansible.cfg; Ansible does not scan sys.path."""
    empty_cfg = tmp / "empty.cfg"
    empty_cfg.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_") and k != "OPSBOOK_REPORT_DIR"}
    env.update(
        PATH=f"{BIN}:{os.environ['PATH']}",
        ANSIBLE_CONFIG=str(empty_cfg),
        ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        **extra,
    )
    return env


def dependency_tarball(name: str, work: Path, dist: Path, env: dict) -> list[str]:
    """Build `name` from its installed copy into dist; return the collections it depends on."""
    source = bundled(name)
    info = json.loads((source / "MANIFEST.json").read_text())["collection_info"]
    tree = work / name
    shutil.copytree(
        source, tree, symlinks=True, ignore=shutil.ignore_patterns("MANIFEST.json", "FILES.json", "__pycache__")
    )
    (tree / "galaxy.yml").write_text(yaml.safe_dump({k: info[k] for k in GALAXY_KEYS if info.get(k)}))
    result = run([BIN / "ansible-galaxy", "collection", "build", "--output-path", dist, tree], work, env, 300)
    assert result.returncode == 0, f"building {name} from {source} failed:\n{result.stdout}{result.stderr}"
    return list(info.get("dependencies") or {})


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("installed-collection")
    env = clean_env(tmp)
    dist, work = tmp / "dist", tmp / "work"
    dist.mkdir()
    work.mkdir()
    result = run([BIN / "ansible-galaxy", "collection", "build", "--output-path", dist, ROOT], tmp, env, 300)
    assert result.returncode == 0, f"ansible-galaxy collection build failed:\n{result.stdout}{result.stderr}"
    [artifact] = dist.glob("opsbook-webstack-*.tar.gz")

    # Without its dependencies beside it, the offline install must refuse: they are declared.
    alone = run([BIN / "ansible-galaxy", "collection", "install", "--offline", "-p", tmp / "alone", artifact], tmp, env)
    assert alone.returncode != 0 and "dependency of opsbook.webstack" in alone.stdout + alone.stderr, (
        "installing the collection alone, offline, did not ask for its dependencies:\n" + alone.stdout + alone.stderr
    )

    wanted, done = [*GALAXY["dependencies"], LAB_CONNECTION], set()
    while wanted:
        name = wanted.pop()
        if name not in done:
            done.add(name)
            wanted.extend(dependency_tarball(name, work, dist, env))

    collections = tmp / "collections"
    tarballs = sorted(dist.glob("*.tar.gz"))
    result = run([BIN / "ansible-galaxy", "collection", "install", "--offline", "-p", collections, *tarballs], tmp, env)
    assert result.returncode == 0, f"offline install failed:\n{result.stdout}{result.stderr}"
    return {"tmp": tmp, "collections": collections, "expected": done | {"opsbook.webstack"}}


def test_install_holds_the_collection_and_its_dependencies(installed):
    root = installed["collections"] / "ansible_collections"
    found = {f"{ns.name}.{c.name}" for ns in root.iterdir() for c in ns.iterdir()}
    assert found == installed["expected"]
    manifest = json.loads((root / "opsbook" / "webstack" / "MANIFEST.json").read_text())
    assert manifest["collection_info"]["dependencies"] == GALAXY["dependencies"]
    for name, version_range in GALAXY["dependencies"].items():
        namespace, collection = name.split(".")
        version = json.loads((root / namespace / collection / "MANIFEST.json").read_text())["collection_info"][
            "version"
        ]
        assert meets_requirements(version, version_range), f"{name} {version} installed for {version_range}"


def test_validate_and_health_run_by_fqcn_and_the_report_lands_in_the_state_directory(installed, lab):
    tmp, collections = installed["tmp"], installed["collections"]
    cwd = tmp / "elsewhere"  # no ansible.cfg, no playbooks/collections link nearby
    cwd.mkdir()
    state = tmp / "state"
    env = clean_env(tmp, ANSIBLE_COLLECTIONS_PATH=str(collections), XDG_STATE_HOME=str(state))
    inventory = str(ROOT / "inventories" / "lab")
    for playbook in ("opsbook.webstack.validate", "opsbook.webstack.health"):
        result = run([BIN / "ansible-playbook", "-i", inventory, playbook], cwd, env)
        assert result.returncode == 0, f"{playbook} failed:\n{result.stdout[-4000:]}{result.stderr[-2000:]}"
        assert "failed=0" in result.stdout and "unreachable=0" in result.stdout

    reports = sorted((state / "opsbook" / "reports").glob("health-*.json"))
    elsewhere = [str(p) for p in collections.rglob("health-*")]
    assert len(reports) == 1, f"one health report expected under {state}/opsbook/reports: {reports}; {elsewhere}"
    [report] = reports
    assert (report.with_suffix(".html")).is_file()
    data = json.loads(report.read_text())
    assert data["kind"] == "health" and sorted(data["hosts"]) == ["app1", "app2", "db1", "lb1"]
    assert data["json"] == str(report)
    inside = elsewhere + [str(p) for p in cwd.rglob("*")]
    assert not inside, f"reports written inside the installed collection or the working directory: {inside}"
