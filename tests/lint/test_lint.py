"""Lint as tests: ansible-lint (production profile), yamllint, ruff, ansible-doc and role specs."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
MODULES = sorted(p.stem for p in (ROOT / "plugins" / "modules").glob("*.py") if p.stem != "__init__")
ROLES = sorted(p.name for p in (ROOT / "roles").iterdir() if p.is_dir())
FILTERS = sorted(p.stem for p in (ROOT / "plugins" / "filter").glob("*.py") if p.stem != "__init__")


def run(*argv: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(a) for a in argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "ANSIBLE_NOCOLOR": "1", "NO_COLOR": "1", **(env or {})},
    )


def test_ansible_lint_production_profile():
    result = run(BIN / "ansible-lint", "--offline", "--profile", "production", "--nocolor")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]


def test_yamllint():
    result = run(BIN / "yamllint", "--strict", ".")
    assert result.returncode == 0, result.stdout[-6000:]


def test_ruff_check():
    result = run(BIN / "ruff", "check", ".")
    assert result.returncode == 0, result.stdout[-6000:]


def test_ruff_format():
    result = run(BIN / "ruff", "format", "--check", ".")
    assert result.returncode == 0, result.stdout[-6000:]


@pytest.mark.parametrize("role", ROLES)
def test_every_role_declares_its_arguments(role):
    spec = ROOT / "roles" / role / "meta" / "argument_specs.yml"
    assert spec.is_file(), f"roles/{role} has no meta/argument_specs.yml"
    assert (ROOT / "roles" / role / "defaults" / "main.yml").is_file(), f"roles/{role} has no defaults/main.yml"


DOCUMENTED = [("module", m) for m in MODULES] + [("filter", f) for f in FILTERS] + [("role", r) for r in ROLES]


@pytest.mark.parametrize(("kind", "name"), DOCUMENTED, ids=[f"{k}:{n}" for k, n in DOCUMENTED])
def test_ansible_doc_renders(kind, name):
    """`ansible-doc` works for every module, filter and role, through the playbook-adjacent collection."""
    result = run(
        BIN / "ansible-doc",
        "-t",
        kind,
        f"opsbook.webstack.{name}",
        env={"ANSIBLE_COLLECTIONS_PATH": str(ROOT / "playbooks" / "collections")},
    )
    assert result.returncode == 0, result.stderr
    assert "opsbook.webstack." + name in result.stdout
    if kind == "role":
        assert re.search(r"ENTRY POINT: \*?main", result.stdout), result.stdout[:500]
    else:
        assert "EXAMPLES" in result.stdout and "RETURN VALUES" in result.stdout
