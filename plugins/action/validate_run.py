# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""opsbook.webstack.validate_run: checks of the run itself, made on the controller.

Two things a play cannot see from its variables: which variables came from the command line
(-e), and which plays the playbooks being run hold. Inside a play an extra var looks like any
other variable; here the variable manager still knows which ones it loaded from -e, and the
inventory (with --limit applied, and the groups validate added) says which hosts each play's
`hosts:` pattern will match when that play starts.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from ansible import context
from ansible.errors import AnsibleError
from ansible.plugins.action import ActionBase

COLLECTION_ROOT = Path(__file__).resolve().parents[2]
# libyaml's loader where PyYAML has it (as Ansible's own loader does): every playbook run reads
# the roles' YAML here, and the pure-Python loader took about 0.8 s of it.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
IMPORT_KEYS = ("ansible.builtin.import_playbook", "import_playbook")


def _load(text: str) -> Any:
    return yaml.load(text, Loader=_LOADER)  # noqa: S506 - a safe loader (CSafeLoader or SafeLoader)


def declared_variables(roles_dir: Path = COLLECTION_ROOT / "roles") -> set[str]:
    """Every variable a role of the collection declares: its argument specs and its defaults."""
    names: set[str] = set()
    for role in sorted(p for p in roles_dir.iterdir() if p.is_dir()):
        spec = role / "meta" / "argument_specs.yml"
        if spec.is_file():
            data = _load(spec.read_text(encoding="utf-8")) or {}
            for entry in (data.get("argument_specs") or {}).values():
                names.update((entry or {}).get("options") or {})
        defaults = role / "defaults" / "main.yml"
        if defaults.is_file():
            names.update(_load(defaults.read_text(encoding="utf-8")) or {})
    return names


ROLE_REFERENCE = re.compile(r"opsbook\.webstack\.(\w+)")
SET_STATS_KEYS = ("ansible.builtin.set_stats", "set_stats")


def _tasks(items: Any) -> Iterable[dict[str, Any]]:
    """Every task of a task list, those inside blocks included."""
    for task in items if isinstance(items, list) else []:
        if isinstance(task, dict):
            yield task
            for key in ("block", "rescue", "always"):
                yield from _tasks(task.get(key))


def reported_variables(roles_dir: Path = COLLECTION_ROOT / "roles") -> dict[str, str]:
    """The set_stats keys the roles report, each with the role that reports it.

    AWX passes every set_stats key of a job to the next jobs of a workflow as an extra variable.
    """
    keys: dict[str, str] = {}
    for tasks_file in sorted(roles_dir.glob("*/tasks/*.yml")):
        for task in _tasks(_load(tasks_file.read_text(encoding="utf-8"))):
            for module in SET_STATS_KEYS:
                data = (task.get(module) or {}).get("data") if isinstance(task.get(module), dict) else None
                for key in data or {}:
                    keys.setdefault(key, tasks_file.parts[-3])
    return keys


def playbook_files(playbooks: Iterable[Path]) -> list[Path]:
    """The playbook files and the ones they import."""
    files = {Path(p).resolve() for p in playbooks if Path(p).is_file()}
    files |= {Path(play["file"]) for p in playbooks for play in playbook_plays(Path(p))}
    return sorted(files)


def roles_of(playbooks: Iterable[Path], roles_dir: Path = COLLECTION_ROOT / "roles") -> set[str]:
    """The collection's roles the playbooks use, and the roles those use, by their FQCN."""
    existing = {p.name for p in roles_dir.iterdir() if p.is_dir()}
    texts = [p.read_text(encoding="utf-8") for p in playbook_files(playbooks)]
    found: set[str] = set()
    while texts:
        new = {name for text in texts for name in ROLE_REFERENCE.findall(text)} & existing - found
        found |= new
        texts = [f.read_text(encoding="utf-8") for role in sorted(new) for f in (roles_dir / role).rglob("*.yml")]
    return found


def readers(
    names: Iterable[str], playbooks: Iterable[Path], roles_dir: Path = COLLECTION_ROOT / "roles"
) -> dict[str, str]:
    """Which of `names` the run's playbooks or their roles read, each with one file that does."""
    files = playbook_files(playbooks)
    for role in sorted(roles_of(files, roles_dir)):
        files += sorted(f for f in (roles_dir / role).rglob("*") if f.is_file())
    found: dict[str, str] = {}
    for name in names:
        word = re.compile(rf"\b{re.escape(name)}\b")
        for f in files:
            if word.search(f.read_text(encoding="utf-8", errors="replace")):
                found[name] = str(f.relative_to(roles_dir.parent)) if f.is_relative_to(roles_dir.parent) else str(f)
                break
    return found


def describe_reported(name: str, role: str, reader: str) -> str:
    return (
        f"'{name}' given with -e is a result the {role} role reports (set_stats), and this run computes its own"
        f" ({reader}): given with -e it would override that. Leave it out of -e; in an AWX workflow, do not"
        f" run this playbook right after one that reports {name} (AWX passes set_stats on as extra variables)."
    )


def unknown_variables(given: Iterable[str], known: Iterable[str], prefixes: Iterable[str]) -> list[dict[str, Any]]:
    """The names in `given` that start with one of `prefixes` and are not `known`, each with its closest known names."""
    known = sorted(set(known))
    prefixes = tuple(prefixes)
    unknown = []
    for name in sorted(set(given)):
        if name.startswith(prefixes) and name not in known:
            # Names of the same prefix first (rollback_confrim: rollback_confirm, not backup_config).
            prefix = next(p for p in prefixes if name.startswith(p))
            close = difflib.get_close_matches(name, [k for k in known if k.startswith(prefix)], n=3, cutoff=0.6)
            unknown.append({"name": name, "close": close or difflib.get_close_matches(name, known, n=3, cutoff=0.6)})
    return unknown


def describe_unknown(item: dict[str, Any]) -> str:
    if item["close"]:
        hint = "did you mean " + " or ".join(f"'{c}'" for c in item["close"]) + "?"
    else:
        hint = "no playbook or role of opsbook.webstack reads it."
    return f"Unknown variable '{item['name']}' given with -e: {hint}"


def playbook_plays(path: Path, seen: frozenset[Path] = frozenset()) -> list[dict[str, Any]]:
    """The plays of a playbook file in order, imported playbooks included: name, hosts, file."""
    path = path.resolve()
    if path in seen or not path.is_file():
        return []
    data = _load(path.read_text(encoding="utf-8")) or []
    plays: list[dict[str, Any]] = []
    for item in data if isinstance(data, list) else []:
        if not isinstance(item, dict):
            continue
        target = next((item[k] for k in IMPORT_KEYS if k in item), None)
        if isinstance(target, dict):
            target = target.get("file") or target.get("_raw_params")
        if isinstance(target, str):
            if "{{" not in target:
                plays += playbook_plays(path.parent / target, seen | {path})
        elif "hosts" in item:
            hosts = item["hosts"]
            pattern = ",".join(map(str, hosts)) if isinstance(hosts, list) else str(hosts)
            plays.append({"name": item.get("name") or pattern, "hosts": pattern, "file": str(path)})
    return plays


def pattern_groups(pattern: str) -> set[str]:
    """The names a host pattern refers to (app:!db[0],&x -> app, db, x)."""
    return {re.sub(r"\[.*\]$", "", term.lstrip("!&")) for term in re.split(r"[:,]", pattern) if term.strip()}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("prefixes", "known_variables", "runtime_groups", "playbooks"))

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        _valid, args = self.validate_argument_spec(
            argument_spec={
                "prefixes": {"type": "list", "elements": "str", "default": []},
                "known_variables": {"type": "list", "elements": "str", "default": []},
                "runtime_groups": {"type": "list", "elements": "str", "default": []},
                "playbooks": {"type": "list", "elements": "path"},
            }
        )
        manager = self._task.get_variable_manager()
        if manager is None:
            raise AnsibleError("validate_run needs the variable manager of a play (run it as a task of a play).")
        problems: list[str] = []

        playbooks = args["playbooks"]
        if playbooks is None:
            playbooks = [os.path.abspath(p) for p in context.CLIARGS.get("args", ())]

        # The roles' variables are read only when -e gives a name with one of the prefixes.
        prefixed = [name for name in manager.extra_vars if name.startswith(tuple(args["prefixes"]))]
        known = (declared_variables() | set(args["known_variables"])) if prefixed else set()
        unknown = unknown_variables(prefixed, known, args["prefixes"])
        # A result of an earlier job (AWX passes set_stats on) is fine where nothing of this run reads it.
        reported = reported_variables() if unknown else {}
        passed_on = [item["name"] for item in unknown if item["name"] in reported]
        read = readers(passed_on, [Path(p) for p in playbooks]) if passed_on else {}
        for item in unknown:
            if item["name"] in read:
                problems.append(describe_reported(item["name"], reported[item["name"]], read[item["name"]]))
            elif item["name"] not in reported:
                problems.append(describe_unknown(item))
        unknown = [item for item in unknown if item["name"] not in reported or item["name"] in read]
        inventory = manager._inventory
        limit = context.CLIARGS.get("subset")
        plays = []
        empty: dict[tuple[str, str], list[str]] = {}  # (file, pattern) -> names of plays with no host
        for playbook in playbooks:
            for play in playbook_plays(Path(playbook)):
                if "{{" in play["hosts"] or pattern_groups(play["hosts"]) <= set(args["runtime_groups"]):
                    play["matched"] = None  # decided during the run
                else:
                    matched = inventory.get_hosts(play["hosts"], ignore_restrictions=True)
                    play["matched"] = [host.name for host in matched]
                    if not matched:
                        empty.setdefault((play["file"], play["hosts"]), []).append(play["name"])
                plays.append(play)
        for (file, pattern), names in empty.items():
            problems.append(self._no_host(file, pattern, names, inventory, limit))

        result.update(
            changed=False,
            failed=bool(problems),
            unknown_variables=unknown,
            plays=plays,
            problems=problems,
            msg=" ".join(problems) if problems else "The command line and the plays are fine.",
        )
        return result

    @staticmethod
    def _no_host(file: str, pattern: str, names: list[str], inventory: Any, limit: str | None) -> str:
        everywhere = [h.name for h in inventory.get_hosts(pattern, ignore_limits=True, ignore_restrictions=True)]
        plays = ", ".join(f"'{name}'" for name in names)
        where = f"{'play' if len(names) == 1 else 'plays'} {plays} of {os.path.basename(file)} (hosts: {pattern})"
        verb = "matches" if len(names) == 1 else "match"
        if everywhere and limit:
            return (
                f"With --limit {limit}, {where} {verb} no host and would do nothing while the run ends ok."
                f" Add {' or '.join(everywhere)} to --limit."
            )
        return (
            f"The {where} {verb} no host of the inventory and would do nothing while the run ends ok."
            " Check the group names (opsbook_group_*, docs/inventory.md)."
        )
