"""galaxy.yml, the roles' metadata and LICENSE: what Galaxy and `ansible-galaxy install` read.

The dependencies are read from the code: every collection the shipped roles, playbooks and
plugins name by FQCN (and that exists, in the venv's `ansible` bundle) must be declared, with
the range requirements.yml gives it, and nothing else may be. test_collection_artifact.py
builds the artifact and runs galaxy-importer on it.
"""

from __future__ import annotations

import re
from pathlib import Path

import ansible_collections
import pytest
import yaml
from test_requirements_yml import load_requirements

ROOT = Path(__file__).resolve().parents[2]
GALAXY = yaml.safe_load((ROOT / "galaxy.yml").read_text())
SHIPPED = ("roles", "playbooks", "plugins")
ROLES = sorted(p.name for p in (ROOT / "roles").iterdir() if p.is_dir())
FQCN = re.compile(r"\b([a-z][a-z0-9_]*)\.([a-z][a-z0-9_]*)\.[a-z0-9_]+")
# Collections that ansible-core itself provides, and this one.
NOT_DEPENDENCIES = {"ansible.builtin", "ansible.legacy", "opsbook.webstack"}


def known_collections() -> set[str]:
    """Every collection in the venv's `ansible` bundle: an FQCN prefix that is not one is not a collection."""
    # Under pytest the repository's playbooks/collections link is on the package path too: skip it.
    bases = [Path(p) for p in ansible_collections.__path__ if not Path(p).is_relative_to(ROOT / "playbooks")]
    return {
        f"{ns.name}.{coll.name}"
        for base in bases
        for ns in base.iterdir()
        if ns.is_dir()
        for coll in ns.iterdir()
        if coll.is_dir()
    }


def collections_used(root: Path = ROOT) -> dict[str, set[str]]:
    """Collection -> the shipped files that name it by FQCN."""
    known = known_collections()
    used: dict[str, set[str]] = {}
    for top in SHIPPED:
        for path in (root / top).rglob("*"):
            if "collections" in path.relative_to(root).parts[:2] or path.suffix not in {".yml", ".yaml", ".py", ".j2"}:
                continue
            for ns, name in FQCN.findall(path.read_text(errors="replace")):
                collection = f"{ns}.{name}"
                if collection in known and collection not in NOT_DEPENDENCIES:
                    used.setdefault(collection, set()).add(str(path.relative_to(root)))
    return used


def test_the_scan_finds_what_the_roles_call():
    """The scan itself: it sees the dependencies the issue named (it would pass vacuously if it saw nothing)."""
    used = collections_used()
    assert {"community.postgresql", "community.general", "ansible.posix", "community.crypto", "amazon.aws"} <= set(used)
    assert "roles/provision/tasks/postgresql.yml" in used["community.postgresql"]


def test_dependencies_are_what_the_shipped_content_calls():
    declared = set(GALAXY.get("dependencies") or {})
    used = collections_used()
    missing = {c: sorted(files)[:3] for c, files in used.items() if c not in declared}
    assert not missing, f"galaxy.yml `dependencies` lacks collections the shipped content uses: {missing}"
    unused = declared - set(used)
    assert not unused, f"galaxy.yml `dependencies` lists collections nothing shipped uses: {sorted(unused)}"


def test_dependency_ranges_equal_requirements_yml():
    requirements = {r.name: r.version for r in load_requirements()}
    for name, version_range in GALAXY["dependencies"].items():
        assert name in requirements, f"galaxy.yml depends on {name}, which requirements.yml does not list"
        assert version_range == requirements[name], (
            f"{name}: galaxy.yml says {version_range!r}, requirements.yml says {requirements[name]!r}"
        )


def test_requirements_yml_extras_are_used_outside_the_collection_only():
    """requirements.yml may list more (the lab's connection plugin), but only what the tests and lab use."""
    extras = {r.name for r in load_requirements()} - set(GALAXY["dependencies"])
    elsewhere = " ".join(
        p.read_text(errors="replace")
        for top in ("molecule", "tests", "inventories", "scripts")
        for p in (ROOT / top).rglob("*")
        if p.is_file() and p.suffix in {".yml", ".yaml", ".py", ".sh"}
    )
    for name in extras:
        assert f"{name}." in elsewhere, f"requirements.yml lists {name}, which neither the collection nor the tests use"


def test_install_page_lists_the_dependencies():
    """docs/install.md's table says what galaxy.yml declares."""
    rows = set(re.findall(r"^\| ([a-z_]+\.[a-z_]+) \| `([^`]+)` \|$", (ROOT / "docs" / "install.md").read_text(), re.M))
    assert rows == set(GALAXY["dependencies"].items())


def test_metadata_urls_are_one_consistent_set():
    base = GALAXY["repository"]
    assert re.fullmatch(r"https://[a-z0-9.-]+/[\w.-]+/[\w.-]+", base), base
    for key in ("documentation", "homepage", "issues"):
        assert str(GALAXY.get(key, "")).startswith(base), f"galaxy.yml {key} is not under repository {base}"
    assert GALAXY["license"] == ["GPL-3.0-or-later"]


def test_license_file_is_the_gpl_3():
    text = (ROOT / "LICENSE").read_text()
    assert text.lstrip().startswith("GNU GENERAL PUBLIC LICENSE")
    assert "Version 3, 29 June 2007" in text and "END OF TERMS AND CONDITIONS" in text


def runtime_minimum() -> str:
    requires = yaml.safe_load((ROOT / "meta" / "runtime.yml").read_text())["requires_ansible"]
    return re.search(r">=\s*(\d+\.\d+)", requires).group(1)


@pytest.mark.parametrize("role", ROLES)
def test_role_has_galaxy_metadata(role):
    meta_path = ROOT / "roles" / role / "meta" / "main.yml"
    assert meta_path.is_file(), f"roles/{role}/meta/main.yml is missing"
    info = yaml.safe_load(meta_path.read_text())["galaxy_info"]
    assert info["role_name"] == role and info["namespace"] == GALAXY["namespace"]
    assert info["license"] == "GPL-3.0-or-later"
    assert str(info["min_ansible_version"]) == runtime_minimum(), "min_ansible_version differs from meta/runtime.yml"
    assert info["description"].strip() and info["platforms"]


@pytest.mark.parametrize("role", ROLES)
def test_role_readme_points_at_existing_docs(role):
    readme = ROOT / "roles" / role / "README.md"
    assert readme.is_file(), f"roles/{role}/README.md is missing (galaxy-importer rejects the role)"
    text = readme.read_text()
    assert text.startswith(f"# opsbook.webstack.{role}\n")
    links = re.findall(r"\]\((\.\./\.\./docs/[\w.-]+\.md)\)", text)
    assert links, f"roles/{role}/README.md does not link to docs/"
    for link in links:
        assert (readme.parent / link).resolve().is_file(), f"roles/{role}/README.md links to missing {link}"


@pytest.mark.parametrize("role", ROLES)
def test_every_entry_point_is_described(role):
    """antsibull-docs lint wants a description on every role entry point, not only a short one."""
    specs = yaml.safe_load((ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    for entry, spec in specs.items():
        assert str(spec.get("short_description", "")).strip(), f"{role} entry point {entry}: no short_description"
        assert spec.get("description"), f"{role} entry point {entry}: no description"
