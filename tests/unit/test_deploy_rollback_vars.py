"""The rollback variables a user reads about are the ones playbooks/rollback.yml reads (issue #19, item 13).

The docs named rollback_restore_db and rollback_confirm while the playbook read
rollback_restore_database and rollback_restore_confirm: a user following the docs got a
code-only rollback that exited 0. One name each, here checked both ways.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# rollback_<name> as a variable, not a YAML anchor or alias (&rollback_vars, *rollback_vars).
NAME = re.compile(r"(?<![&*\w])rollback_[a-z_]*[a-z]")
ANCHORS = {"rollback_vars"}


def names(*paths: Path) -> set[str]:
    found: set[str] = set()
    for path in paths:
        files = (
            [path]
            if path.is_file()
            else [p for p in path.rglob("*") if p.is_file() and p.suffix in {".md", ".yml", ".yaml"}]
        )
        for file in files:
            found |= set(NAME.findall(file.read_text(encoding="utf-8")))
    return found - ANCHORS


def test_every_documented_rollback_variable_is_read_by_rollback_yml():
    documented = names(ROOT / "docs", ROOT / "README.md", ROOT / "inventories")
    read = names(ROOT / "playbooks" / "rollback.yml")
    assert documented, "no rollback_* variable documented"
    assert documented - read == set(), f"documented but not read by playbooks/rollback.yml: {sorted(documented - read)}"
    assert read - documented == set(), (
        f"read by playbooks/rollback.yml but documented nowhere: {sorted(read - documented)}"
    )


def test_the_database_restore_switch_and_its_confirmation_have_one_name_each():
    read = names(ROOT / "playbooks" / "rollback.yml")
    assert {"rollback_restore_db", "rollback_confirm"} <= read
    assert not {"rollback_restore_database", "rollback_restore_confirm"} & read
