"""Lint as tests: ansible-lint (production profile), yamllint, ruff, ansible-doc and role specs."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
MODULES = sorted(p.stem for p in (ROOT / "plugins" / "modules").glob("*.py") if p.stem != "__init__")
ROLES = sorted(p.name for p in (ROOT / "roles").iterdir() if p.is_dir())


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


@pytest.mark.parametrize("module", MODULES)
def test_module_documentation_renders(module):
    result = run(
        BIN / "ansible-doc",
        "--json",
        f"opsbook.webstack.{module}",
        env={"ANSIBLE_COLLECTIONS_PATH": str(ROOT / "playbooks" / "collections")},
    )
    assert result.returncode == 0, result.stderr
    assert f"opsbook.webstack.{module}" in result.stdout


@pytest.mark.parametrize("role", ROLES)
def test_role_documentation_renders(role):
    result = run(
        BIN / "ansible-doc",
        "-t",
        "role",
        f"opsbook.webstack.{role}",
        env={"ANSIBLE_COLLECTIONS_PATH": str(ROOT / "playbooks" / "collections")},
    )
    assert result.returncode == 0, result.stderr
    assert "ENTRY POINT: main" in result.stdout
