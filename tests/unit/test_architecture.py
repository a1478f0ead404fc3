"""docs/architecture.md's picture against the tree: every playbook, public role entry point, module
and module_utils file is drawn, nothing drawn is missing, and the arrows from modules and
module_utils files to module_utils are exactly their imports.

The picture is the first ```mermaid block; node ids follow the scheme the page states:
pb_<playbook>, ep_<role>__<entry point> inside `subgraph role_<role>`, mod_<module>, mu_<module_utils>.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "architecture.md"
MODULE_UTILS = "ansible_collections.opsbook.webstack.plugins.module_utils"
NODE = re.compile(r"^\s*((?:pb|ep|mod|mu)_[A-Za-z0-9_]+)\[")
SUBGRAPH = re.compile(r"^\s*subgraph\s+(role_[a-z0-9_]+)\[")
EDGE = re.compile(r"^\s*((?:mod|mu)_[A-Za-z0-9_]+)\s*-->\s*(mu_[A-Za-z0-9_]+)\s*$")


def picture() -> str:
    match = re.search(r"```mermaid\n(.*?)```", DOC.read_text(), re.DOTALL)
    assert match, f"{DOC} has no ```mermaid block"
    return match.group(1)


def drawn() -> dict:
    """Nodes by kind as the tree names them; an entry point drawn outside its role's subgraph is an error."""
    nodes: dict = {"pb": set(), "ep": set(), "mod": set(), "mu": set()}
    role = None
    for line in picture().splitlines():
        if SUBGRAPH.match(line):
            role = SUBGRAPH.match(line).group(1)[len("role_") :]
        elif line.strip() == "end":
            role = None
        match = NODE.match(line)
        if not match:
            continue
        kind, _sep, name = match.group(1).partition("_")
        if kind == "ep":
            owner, _sep, entry = name.partition("__")
            assert owner == role, f"{match.group(1)} is drawn outside subgraph role_{owner}"
            name = f"{owner}:{entry}"
        elif kind == "pb":
            name += ".yml"
        nodes[kind].add(name)
    return nodes


def existing() -> dict:
    entry_points = set()
    for spec in (ROOT / "roles").glob("*/meta/argument_specs.yml"):
        role = spec.parents[1].name
        entry_points |= {f"{role}:{ep}" for ep in yaml.safe_load(spec.read_text())["argument_specs"]}
    utils = ROOT / "plugins" / "module_utils"
    return {
        "pb": {p.name for p in (ROOT / "playbooks").glob("*.yml")},
        "ep": entry_points,
        "mod": {p.stem for p in (ROOT / "plugins" / "modules").glob("*.py") if p.stem != "__init__"},
        "mu": {p.stem for p in utils.glob("*.py") if p.stem != "__init__"}
        | {p.parent.name for p in utils.glob("*/__init__.py")},
    }


def module_utils_imports(path: Path) -> set:
    """The module_utils files (a package counts as one) that a Python file imports."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(MODULE_UTILS):
            rest = node.module[len(MODULE_UTILS) :].strip(".")
            found |= {rest.split(".")[0]} if rest else {alias.name for alias in node.names}
    return found


def importers() -> dict:
    """mod_<name> / mu_<name> -> the mu_ ids it imports (a package's own files do not count)."""
    plugins = ROOT / "plugins"
    edges = {}
    for path in (plugins / "modules").glob("*.py"):
        edges[f"mod_{path.stem}"] = module_utils_imports(path)
    for path in (plugins / "action").glob("*.py"):  # an action plugin's imports count for its module
        edges.setdefault(f"mod_{path.stem}", set()).update(module_utils_imports(path))
    for path in (plugins / "module_utils").glob("*.py"):
        edges[f"mu_{path.stem}"] = module_utils_imports(path)
    for init in (plugins / "module_utils").glob("*/__init__.py"):
        package = init.parent.name
        edges[f"mu_{package}"] = set().union(*(module_utils_imports(p) for p in init.parent.glob("*.py"))) - {package}
    return {source: {f"mu_{name}" for name in names} for source, names in edges.items() if names}


@pytest.mark.parametrize(
    "kind", ["pb", "ep", "mod", "mu"], ids=["playbooks", "entry points", "modules", "module_utils"]
)
def test_the_picture_draws_exactly_what_exists(kind):
    shown, real = drawn()[kind], existing()[kind]
    assert not real - shown, f"exist but are not in the picture of docs/architecture.md: {sorted(real - shown)}"
    assert not shown - real, f"are in the picture of docs/architecture.md but do not exist: {sorted(shown - real)}"


def test_arrows_to_module_utils_are_the_imports():
    arrows: dict = {}
    for line in picture().splitlines():
        match = EDGE.match(line)
        if match:
            arrows.setdefault(match.group(1), set()).add(match.group(2))
    real = importers()
    for source in sorted(set(arrows) | set(real)):
        assert arrows.get(source, set()) == real.get(source, set()), (
            f"{source}: the picture draws {sorted(arrows.get(source, set()))}, the code imports "
            f"{sorted(real.get(source, set()))}"
        )


def test_every_box_has_its_paragraph():
    """Each playbook, entry point, module and module_utils file is named in the text under the picture."""
    text = DOC.read_text().split("```mermaid", 1)[1].split("```", 1)[1]
    named = set(re.findall(r"`([^`]+)`", text))
    nodes = drawn()
    missing = [pb for pb in nodes["pb"] if pb not in named]
    missing += [name for name in nodes["mod"] | nodes["mu"] if name not in named and f"{name}/" not in named]
    for entry in nodes["ep"]:
        role, _sep, ep = entry.partition(":")
        # The role's paragraph names the role and each entry point.
        paragraph = re.search(rf"^- `{role}`:(.*?)(?=^- |^#|\Z)", text, re.MULTILINE | re.DOTALL)
        if not paragraph or f"`{ep}`" not in paragraph.group(1):
            missing.append(entry)
    assert not missing, f"boxes without a paragraph in docs/architecture.md: {sorted(missing)}"


def test_every_read_of_a_group_name_variable_has_its_default():
    """opsbook_group_<name> is set only to rename a group (docs/inventory.md), so every read in the
    roles and playbooks falls back to the default name: `opsbook_group_db | default('db')`."""
    read = re.compile(r"(?<!['\w])opsbook_group_(\w+)\b(?! \| default\('(\w+)'\))")
    bare = []
    paths = [*(ROOT / "roles").rglob("*.yml"), *(ROOT / "roles").rglob("*.j2"), *(ROOT / "playbooks").glob("*.yml")]
    for path in sorted(paths):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if not line.lstrip().startswith("#"):
                bare += [f"{path.relative_to(ROOT)}:{number}: {m[0]}" for m in read.finditer(line)]
    assert not bare, "opsbook_group_* read without its default name:\n" + "\n".join(bare)
