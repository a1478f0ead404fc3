"""requirements.yml, checked offline: the collections Ansible would load satisfy every entry.

Galaxy is not reachable from the lab machines, so `ansible-galaxy collection install -r
requirements.yml` cannot be the check; the collections come bundled in the `ansible`
package instead. This asks `ansible-galaxy collection list` which copies are on the
collection path, takes for each collection the copy Ansible loads (the first on the path:
a copy earlier on the path hides later ones entirely), and compares its version with the
entry's range the way ansible-galaxy reads it: comma-separated clauses that must all hold,
each `==`, `=`, `!=`, `>=`, `>`, `<=`, `<` or a bare version (equal), and `*` for any.

Run both where ansible.cfg is read (a terminal in the repository) and where it is not (AWX,
CI from another directory), with ANSIBLE_COLLECTIONS_PATH unset.
"""

from __future__ import annotations

import json
import operator
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

try:
    from packaging.version import InvalidVersion, Version
except ImportError:  # pragma: no cover - packaging ships with the controller venv, but is not promised
    Version = None
    InvalidVersion = ValueError

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
REQUIREMENTS = ROOT / "requirements.yml"

# ansible-galaxy's operators (ansible.galaxy.dependency_resolution.versioning); two-character ones first.
OPERATORS: dict[str, Callable[[object, object], bool]] = {
    "!=": operator.ne,
    "==": operator.eq,
    ">=": operator.ge,
    "<=": operator.le,
    "=": operator.eq,
    ">": operator.gt,
    "<": operator.lt,
}
# Environment that would change which collections Ansible sees.
COLLECTION_ENV = ("ANSIBLE_COLLECTIONS_PATH", "ANSIBLE_COLLECTIONS_PATHS", "ANSIBLE_CONFIG")


@dataclass(frozen=True)
class Requirement:
    name: str
    version: str = "*"


@dataclass(frozen=True)
class Installed:
    name: str
    version: str
    path: str  # the ansible_collections directory holding the copy Ansible loads


# --------------------------------------------------------------------------- the checker


def load_requirements(path: Path = REQUIREMENTS) -> list[Requirement]:
    data = yaml.safe_load(path.read_text()) or {}
    entries = data.get("collections") or []
    requirements = []
    for entry in entries:
        if isinstance(entry, str):
            requirements.append(Requirement(entry))
        else:
            requirements.append(Requirement(entry["name"], str(entry.get("version", "*"))))
    return requirements


def _fallback_key(version: str) -> tuple:
    """Version order without `packaging`: numbers compare as numbers, a pre-release sorts before its release."""
    core, _, _build = version.strip().partition("+")
    release, dash, pre = core.partition("-")
    if not re.fullmatch(r"\d+(\.\d+)*", release):
        raise ValueError(f"not a version: {version!r}")
    numbers = [int(part) for part in release.split(".")]
    while len(numbers) > 1 and numbers[-1] == 0:  # 4.0 == 4.0.0
        numbers.pop()
    pre_key = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split(".")) if dash else ()
    # (1,) after any pre-release tuple: 1.0.0-rc1 < 1.0.0
    return (tuple(numbers), (0, pre_key) if dash else (1,))


def parse_version(version: str, use_packaging: bool = True) -> object:
    if use_packaging and Version is not None:
        return Version(version)
    return _fallback_key(version)


def clauses(version_range: str) -> list[tuple[str, str]]:
    """`>=4.0.0,<5.0.0` -> [('>=', '4.0.0'), ('<', '5.0.0')]; a bare version means '=='."""
    result = []
    for clause in version_range.split(","):
        clause = clause.strip()
        op = next((o for o in OPERATORS if clause.startswith(o)), "==")
        bound = clause[len(op) :].strip() if clause.startswith(op) else clause
        if not bound:
            raise ValueError(f"empty clause in version range {version_range!r}")
        result.append((op, bound))
    return result


def satisfies(version: str, version_range: str, use_packaging: bool = True) -> bool:
    if version == "*":  # a collection without a version only meets '*'
        return all(bound == "*" for _, bound in clauses(version_range))
    have = parse_version(version, use_packaging)
    for op, bound in clauses(version_range):
        if bound == "*":
            continue
        if not OPERATORS[op](have, parse_version(bound, use_packaging)):
            return False
    return True


def galaxy_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in COLLECTION_ENV}
    env["ANSIBLE_NOCOLOR"] = "1"
    return env


def installed_collections(cwd: Path, env: dict[str, str] | None = None) -> dict[str, Installed]:
    """The copy of each collection Ansible loads, as `ansible-galaxy collection list` reports the path."""
    result = subprocess.run(
        [str(BIN / "ansible-galaxy"), "collection", "list", "--format", "json"],
        cwd=cwd,
        env=env or galaxy_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"ansible-galaxy collection list failed:\n{result.stderr}"
    listing = json.loads(result.stdout)
    # The listing is not in search order (site-packages can come first). Ansible searches
    # the configured COLLECTIONS_PATHS first, then sys.path; the first copy of a name wins.
    configured = [str(Path(p).expanduser() / "ansible_collections") for p in configured_collection_paths(cwd, env)]

    def rank(path: str) -> int:
        return configured.index(path) if path in configured else len(configured)

    found: dict[str, Installed] = {}
    for path in sorted(listing, key=rank):
        for name, info in listing[path].items():
            found.setdefault(name, Installed(name, str(info.get("version") or "*"), path))
    return found


def configured_collection_paths(cwd: Path, env: dict[str, str] | None) -> list[str]:
    result = subprocess.run(
        [str(BIN / "ansible-config"), "dump", "--format", "json"],
        cwd=cwd,
        env=env or galaxy_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"ansible-config dump failed:\n{result.stderr}"
    settings = {item["name"]: item.get("value") for item in json.loads(result.stdout) if "name" in item}
    return list(settings.get("COLLECTIONS_PATHS") or [])


def unmet(requirement: Requirement, installed: dict[str, Installed]) -> str | None:
    """None when the requirement is met, else what is wrong and what to do."""
    copy = installed.get(requirement.name)
    if copy is None:
        return (
            f"{requirement.name} ({requirement.version}) is not installed on the collection path; "
            "install the `ansible` package pinned in requirements/controller.txt"
        )
    if not satisfies(copy.version, requirement.version):
        return (
            f"{requirement.name} {copy.version} (loaded from {copy.path}) does not satisfy "
            f"{requirement.version!r} from requirements.yml"
        )
    return None


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def listings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Installed]]:
    outside = tmp_path_factory.mktemp("no-ansible-cfg")
    return {
        "with-ansible.cfg": installed_collections(ROOT),
        "without-ansible.cfg": installed_collections(outside),
    }


REQUIREMENTS_LIST = load_requirements()


# --------------------------------------------------------------------------- the real entries


def test_requirements_yml_lists_collections():
    assert REQUIREMENTS_LIST, "requirements.yml lists no collections"
    for requirement in REQUIREMENTS_LIST:
        assert re.fullmatch(r"[a-z0-9_]+\.[a-z0-9_]+", requirement.name), requirement
        clauses(requirement.version)  # parses, or raises naming the range


@pytest.mark.parametrize("context", ["with-ansible.cfg", "without-ansible.cfg"])
@pytest.mark.parametrize("requirement", REQUIREMENTS_LIST, ids=[r.name for r in REQUIREMENTS_LIST])
def test_installed_collection_satisfies(requirement, context, listings):
    problem = unmet(requirement, listings[context])
    assert problem is None, problem


# --------------------------------------------------------------------------- the checker itself


def test_checker_rejects_an_unsatisfied_range(listings):
    installed = listings["without-ansible.cfg"]
    problem = unmet(Requirement("community.postgresql", ">=99"), installed)
    assert problem is not None
    assert "community.postgresql" in problem and installed["community.postgresql"].version in problem
    assert "'>=99'" in problem


def test_checker_rejects_a_missing_collection(listings):
    problem = unmet(Requirement("opsbook.no_such_collection", ">=1.0.0"), listings["without-ansible.cfg"])
    assert problem is not None and "is not installed" in problem


def test_checker_uses_the_copy_ansible_loads(tmp_path):
    """A copy earlier on the collection path hides the bundled one, so it is the one checked."""
    shadow = tmp_path / "ansible_collections" / "community" / "postgresql"
    shadow.mkdir(parents=True)
    manifest = {"collection_info": {"namespace": "community", "name": "postgresql", "version": "1.0.0"}}
    (shadow / "MANIFEST.json").write_text(json.dumps(manifest))
    env = {**galaxy_env(), "ANSIBLE_COLLECTIONS_PATH": str(tmp_path)}
    installed = installed_collections(tmp_path, env=env)
    assert installed["community.postgresql"].version == "1.0.0"
    assert installed["community.postgresql"].path == str(tmp_path / "ansible_collections")
    problem = unmet(Requirement("community.postgresql", ">=4.0.0,<5.0.0"), installed)
    assert problem is not None and "1.0.0" in problem


CASES = [
    ("4.0.0", ">=4.0.0,<5.0.0", True),
    ("4.8.5", ">=4.0.0,<5.0.0", True),
    ("5.0.0", ">=4.0.0,<5.0.0", False),
    ("3.9.9", ">=4.0.0,<5.0.0", False),
    ("10.1.2", ">=9.0.0,<11.0.0", True),  # numeric, not string, order
    ("10.1.2", ">=2.0.0,<3.0.0", False),
    ("4.2.0", ">=99", False),
    ("4.2.0", "*", True),
    ("4.2.0", "4.2.0", True),
    ("4.2.0", "==4.2.0", True),
    ("4.2.0", "=4.2.0", True),
    ("4.2.0", "!=4.2.0", False),
    ("4.2.0", ">4.2.0", False),
    ("4.2.0", "<=4.2.0", True),
    ("4.2.0", ">=4.2", True),
    ("5.0.0-rc1", "<5.0.0", True),
    ("5.0.0-rc1", ">=5.0.0", False),
]


@pytest.mark.parametrize("use_packaging", [True, False], ids=["packaging", "fallback"])
@pytest.mark.parametrize(("version", "version_range", "expected"), CASES)
def test_satisfies(version, version_range, expected, use_packaging):
    if use_packaging and Version is None:
        pytest.fail("packaging is not importable in the controller venv", pytrace=False)
    assert satisfies(version, version_range, use_packaging) is expected


@pytest.mark.parametrize(("version", "version_range", "expected"), CASES)
def test_satisfies_agrees_with_ansible_galaxy(version, version_range, expected):
    """ansible-galaxy's own resolver comparison gives the same answers as the checker."""
    from ansible.galaxy.dependency_resolution.versioning import meets_requirements

    assert meets_requirements(version, version_range) is expected
