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


HEADER = re.compile(r"^> (?:MODULE|FILTER|ROLE:) \*?opsbook\.webstack\.(\w+)\*? ", re.MULTILINE)


@pytest.fixture(scope="module")
def rendered() -> dict:
    """One `ansible-doc` run per kind for all its names (a run per name cost 80 interpreter starts):
    {kind: (the run, {name: its text})}, each text cut at the next plugin's header."""
    out = {}
    for kind, names in (("module", MODULES), ("filter", FILTERS), ("role", ROLES)):
        result = run(
            BIN / "ansible-doc",
            "-t",
            kind,
            *(f"opsbook.webstack.{name}" for name in names),
            env={"ANSIBLE_COLLECTIONS_PATH": str(ROOT / "playbooks" / "collections")},
        )
        starts = list(HEADER.finditer(result.stdout))
        texts = {
            m.group(1): result.stdout[m.start() : starts[i + 1].start() if i + 1 < len(starts) else None]
            for i, m in enumerate(starts)
        }
        out[kind] = (result, texts)
    return out


@pytest.mark.parametrize(("kind", "name"), DOCUMENTED, ids=[f"{k}:{n}" for k, n in DOCUMENTED])
def test_ansible_doc_renders(rendered, kind, name):
    """`ansible-doc` works for every module, filter and role, through the playbook-adjacent collection."""
    result, texts = rendered[kind]
    assert result.returncode == 0, result.stderr
    assert name in texts, f"ansible-doc -t {kind} printed no page for opsbook.webstack.{name}: {result.stderr}"
    text = texts[name]
    if kind == "role":
        assert re.search(r"ENTRY POINT: \*?main", text), text[:500]
    else:
        assert "EXAMPLES" in text and "RETURN VALUES" in text
