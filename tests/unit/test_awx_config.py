"""awx/controller.yml, checked offline against the playbooks and the roles' argument specs.

- Every key of a template, workflow, project and execution environment is an option of the awx.awx
  module that applies it (awx/configure.yml), read from the module's DOCUMENTATION.
- Every playbook (but site.yml) has a template, and every template's playbook exists.
- Every survey question and every template extra variable maps to an option of a role entry point the
  playbook uses (roles/*/meta/argument_specs.yml), to a play variable that feeds one
  (`deploy_target_release: "{{ rollback_release | default('') }}"`), or to a variable the playbook reads
  itself (roles/validate/vars/main.yml); with a compatible type, choices within the option's, and a
  default equal to the role's.
- Destructive templates ask for their confirmation variable: a required question whose default is not
  true, never set in the template's extra_vars.
- Workflows: nodes name existing templates; what a node's template reads from its parent's artifacts
  is a set_stats key of the parent's roles; required questions are answered.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOKS = ROOT / "playbooks"
CONFIG = ROOT / "awx" / "controller.yml"
AWX_MODULES = Path(yaml.__file__).parents[1] / "ansible_collections" / "awx" / "awx" / "plugins" / "modules"

SURVEY_TYPES = {"text", "textarea", "password", "integer", "float", "multiplechoice", "multiselect"}
SURVEY_KEYS = {
    "question_name",
    "question_description",
    "variable",
    "type",
    "required",
    "default",
    "choices",
    "min",
    "max",
}
TRUE_STRINGS = {"true", "yes", "on", "1", "y", "t"}

# Variables the playbooks read themselves (not through a role's options): their types, as the
# playbooks use them. Must list exactly roles/validate/vars/main.yml's __validate_playbook_variables.
PLAYBOOK_VARIABLE_TYPES = {
    "deploy_backup_before": "bool",  # deploy.yml: deploy_backup_before | default(false) | bool
    "deploy_serial": "int",  # deploy.yml, rollback.yml: serial
    "rollback_release": "str",  # rollback.yml: deploy_target_release
    "rollback_restore_db": "bool",  # rollback.yml: rollback_restore_db | default(false) | bool
    "rollback_confirm": "str",  # rollback.yml: compared with app_db_name
    "rollback_migrations": "str",  # rollback.yml: keep or reverse
}

# Every confirmation variable (an option or playbook variable named *_confirm): the variable that makes
# the run destructive (None: the run always is), the template setting that makes it harmless, and the
# code that shows both (so the table cannot outlive the code).
CONFIRMATIONS = {
    "restore_confirm": {
        "gate": None,
        "harmless": ("restore_mode", "drill"),
        "code": ("roles/restore/tasks/check.yml", "restore_mode == 'drill' or restore_confirm | bool"),
    },
    "maintenance_drop_pre_restore_confirm": {
        "gate": "maintenance_drop_pre_restore_days",
        "harmless": None,
        "code": (
            "roles/maintenance/tasks/database.yml",
            "maintenance_drop_pre_restore_days | int == 0 or maintenance_drop_pre_restore_confirm | bool",
        ),
    },
    "rollback_confirm": {
        "gate": "rollback_restore_db",
        "harmless": None,
        "code": ("playbooks/rollback.yml", "rollback_confirm | default('') == app_db_name"),
    },
    "deploy_migrations_confirm": {
        "gate": "rollback_migrations",
        "harmless": None,
        "code": ("roles/deploy/tasks/migrations_plan.yml", "deploy_migrations_confirm == app_db_name"),
    },
    "celery_purge_confirm": {
        "gate": "celery_action",
        "harmless": None,
        "code": ("roles/celery/tasks/purge_failed.yml", "celery_purge_confirm | string == __celery_purge_target"),
    },
}

# AWX passes a job's set_stats to the next nodes of a workflow as extra variables, and every playbook
# starts with validate, which refuses an unknown -e name with a checked prefix (deploy_, backup_, ...)
# unless it is a set_stats key of the collection that nothing of the run reads (validate_run.readers).
# No workflow may pass a child a result the child computes itself: it would override the child's own.
ARTIFACTS_VALIDATE_REFUSES: dict[str, set[str]] = {}


@cache
def config() -> dict[str, Any]:
    return yaml.safe_load(CONFIG.read_text(encoding="utf-8"))


def templates() -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in config()["controller_templates"]}


def survey(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    if not template.get("survey_enabled"):
        return {}
    return {q["variable"]: q for q in template["survey_spec"]["spec"]}


@cache
def module_options(module: str) -> frozenset[str]:
    tree = ast.parse((AWX_MODULES / f"{module}.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "DOCUMENTATION":
            return frozenset(yaml.safe_load(node.value.value)["options"])
    raise AssertionError(f"awx.awx.{module} has no DOCUMENTATION")


@cache
def argument_specs(role: str) -> dict[str, Any]:
    path = ROOT / "roles" / role / "meta" / "argument_specs.yml"
    return yaml.safe_load(path.read_text(encoding="utf-8"))["argument_specs"]


def _load(path: Path) -> list[Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8")) or []


def _walk_tasks(tasks: Any):
    for task in tasks or []:
        if not isinstance(task, dict):
            continue
        yield task
        for key in ("block", "rescue", "always"):
            yield from _walk_tasks(task.get(key))


@cache
def playbook_uses(name: str) -> tuple[frozenset[tuple[str, str]], dict[str, str], str]:
    """(role entry points, {variable: option it feeds}, the text of the playbook and its imports)."""
    entries: set[tuple[str, str]] = set()
    aliases: dict[str, str] = {}
    texts = []
    path = PLAYBOOKS / name
    texts.append(path.read_text(encoding="utf-8"))
    for play in _load(path):
        if "ansible.builtin.import_playbook" in play:
            sub_entries, sub_aliases, sub_text = playbook_uses(play["ansible.builtin.import_playbook"])
            entries |= sub_entries
            aliases.update(sub_aliases)
            texts.append(sub_text)
            continue
        _collect_aliases(play.get("vars"), aliases)
        for role in play.get("roles") or []:
            entries.add((role["role"].split(".")[-1], "main"))
            _collect_aliases(role, aliases)
        for section in ("pre_tasks", "tasks", "post_tasks"):
            for task in _walk_tasks(play.get(section)):
                for key in ("ansible.builtin.include_role", "ansible.builtin.import_role"):
                    if key in task:
                        role = task[key]["name"].split(".")[-1]
                        entries.add((role, Path(task[key].get("tasks_from", "main")).stem))
                        _collect_aliases(task.get("vars"), aliases)
    return frozenset(entries), aliases, "\n".join(texts)


def _collect_aliases(mapping: Any, aliases: dict[str, str]) -> None:
    """`option: "{{ variable | default(...) }}"` means the variable feeds the option."""
    for option, value in (mapping or {}).items():
        match = re.fullmatch(r"\{\{\s*(\w+)\s*(?:\|[^}]*)?\}\}", str(value).strip())
        if match and match.group(1) != option:
            aliases.setdefault(match.group(1), option)


def entry_options(name: str) -> dict[str, dict[str, Any]]:
    """Options of every entry point the playbook uses; an entry point without a spec of its own is
    described by the role's main spec."""
    options: dict[str, dict[str, Any]] = {}
    entries, _, _ = playbook_uses(name)
    for role, entry in sorted(entries):
        specs = argument_specs(role)
        options.update((specs.get(entry) or specs["main"]).get("options") or {})
    return options


def resolve(name: str, variable: str) -> dict[str, Any]:
    """The option (or playbook variable) a variable given to the playbook feeds, as a spec."""
    options = entry_options(name)
    if variable in options:
        return options[variable]
    _, aliases, text = playbook_uses(name)
    if variable in aliases and aliases[variable] in options:
        return options[aliases[variable]]
    if variable in PLAYBOOK_VARIABLE_TYPES and re.search(rf"\b{variable}\b", text):
        return {"type": PLAYBOOK_VARIABLE_TYPES[variable]}
    raise AssertionError(f"{name}: '{variable}' is no option of the role entry points it uses, nor a variable it reads")


def _bool_of(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if str(value).lower() in TRUE_STRINGS:
        return True
    if str(value).lower() in {"false", "no", "off", "0", "n", "f"}:
        return False
    return None


def question_problems(question: dict[str, Any], spec: dict[str, Any]) -> list[str]:
    """Why a survey question does not fit the option it feeds (empty: it fits)."""
    kind, qtype = spec.get("type", "str"), question["type"]
    problems = []
    choices = question.get("choices")
    if isinstance(choices, str):
        choices = choices.splitlines()
    if kind in {"str", "path", "raw"}:
        if qtype not in {"text", "textarea", "password", "multiplechoice"}:
            problems.append(f"type {qtype} for a {kind} option")
        if spec.get("choices") and qtype != "multiplechoice":
            problems.append(f"free text for an option with choices {spec['choices']}")
        if qtype == "multiplechoice" and spec.get("choices") and not set(choices) <= set(map(str, spec["choices"])):
            problems.append(f"choices {choices} outside the option's {spec['choices']}")
    elif kind == "int":
        if qtype != "integer":
            problems.append(f"type {qtype} for an int option")
    elif kind == "float":
        if qtype not in {"integer", "float"}:
            problems.append(f"type {qtype} for a float option")
    elif kind == "bool":
        if qtype != "multiplechoice" or {c.lower() for c in choices or []} != {"true", "false"}:
            problems.append(f"a bool option needs a multiplechoice of 'true' and 'false', not {qtype} {choices}")
    elif kind == "list":
        if qtype != "multiselect":
            problems.append(f"type {qtype} for a list option")
    else:
        problems.append(f"a {kind} option cannot be a survey question")
    if spec.get("no_log") and qtype != "password":
        problems.append("a no_log option must be a password question")
    if "default" in question and "default" in spec:
        want = spec["default"]
        have = question["default"]
        same = _bool_of(have) == want if kind == "bool" else str(have) == str(want)
        if not same:
            problems.append(f"default {have!r} differs from the role's {want!r} (it would override the inventory)")
    if "default" in question and choices and str(question["default"]) not in choices:
        problems.append(f"default {question['default']!r} is not one of {choices}")
    return problems


def test_every_key_is_an_option_of_the_awx_module_applying_it():
    for section, module in (
        ("controller_templates", "job_template"),
        ("controller_workflows", "workflow_job_template"),
        ("controller_projects", "project"),
        ("controller_execution_environments", "execution_environment"),
    ):
        for item in config()[section]:
            unknown = set(item) - module_options(module)
            assert not unknown, f"{section} '{item['name']}': {sorted(unknown)} are not options of awx.awx.{module}"
    for template in templates().values():
        if template.get("survey_enabled"):
            assert {"name", "description", "spec"} <= set(template["survey_spec"]), template["name"]
            for question in template["survey_spec"]["spec"]:
                assert set(question) <= SURVEY_KEYS, f"{template['name']}: {set(question) - SURVEY_KEYS}"
                assert question["type"] in SURVEY_TYPES, f"{template['name']}: {question['type']}"
    # Every key configure.yml passes on is read from the items (so a key here is applied, not dropped).
    configure = (ROOT / "awx" / "configure.yml").read_text(encoding="utf-8")
    for section in ("controller_templates", "controller_workflows", "controller_projects"):
        for item in config()[section]:
            for key in item:
                assert f"item.{key}" in configure, f"awx/configure.yml does not apply '{key}' of {section}"


def test_every_playbook_has_a_template_and_every_template_a_playbook():
    used = {t["playbook"] for t in templates().values()}
    for playbook in used:
        assert (ROOT / playbook).is_file(), f"a template runs {playbook}, which does not exist"
    entry = {f"playbooks/{p.name}" for p in PLAYBOOKS.glob("*.yml") if p.name != "site.yml"}
    assert not entry - used, f"playbooks without a template: {sorted(entry - used)}"
    project = config()["controller_projects"][0]["name"]
    assert all(t["project"] == project for t in templates().values())


def test_the_playbook_variable_table_matches_validate():
    listed = yaml.safe_load((ROOT / "roles" / "validate" / "vars" / "main.yml").read_text(encoding="utf-8"))
    assert set(PLAYBOOK_VARIABLE_TYPES) == set(listed["__validate_playbook_variables"])


@pytest.mark.parametrize("name", sorted(t["name"] for t in yaml.safe_load(CONFIG.read_text())["controller_templates"]))
def test_survey_questions_and_extra_vars_map_to_role_options(name):
    template = templates()[name]
    playbook = Path(template["playbook"]).name
    problems = []
    for variable, question in survey(template).items():
        spec = resolve(playbook, variable)
        problems += [f"question '{variable}': {p}" for p in question_problems(question, spec)]
        if question.get("required") and "default" not in question and question["type"] == "multiplechoice":
            assert question.get("choices"), variable
    for variable, value in (template.get("extra_vars") or {}).items():
        spec = resolve(playbook, variable)
        if isinstance(value, str) and "{{" in value:
            continue
        if spec.get("choices") and value not in spec["choices"]:
            problems.append(f"extra var '{variable}': {value!r} is not one of {spec['choices']}")
        kind = spec.get("type", "str")
        ok = {"bool": lambda v: isinstance(v, bool), "int": lambda v: isinstance(v, int) and not isinstance(v, bool)}
        if kind in ok and not ok[kind](value):
            problems.append(f"extra var '{variable}': {value!r} is not a {kind}")
    assert not problems, f"{name}: " + "; ".join(problems)


def confirmations_read(playbook: str) -> set[str]:
    names = {o for o in entry_options(playbook) if o.endswith("_confirm")}
    _, _, text = playbook_uses(playbook)
    names |= {v for v in PLAYBOOK_VARIABLE_TYPES if v.endswith("_confirm") and re.search(rf"\b{v}\b", text)}
    return names


def test_the_confirmation_table_matches_the_code():
    every = {o for role in (ROOT / "roles").iterdir() for e in argument_specs(role.name).values()
             for o in (e.get("options") or {}) if o.endswith("_confirm")}  # fmt: skip
    every |= {v for v in PLAYBOOK_VARIABLE_TYPES if v.endswith("_confirm")}
    assert every == set(CONFIRMATIONS), "a confirmation variable is new or gone: say in CONFIRMATIONS what it guards"
    for variable, rule in CONFIRMATIONS.items():
        path, snippet = rule["code"]
        assert snippet in (ROOT / path).read_text(encoding="utf-8"), f"{variable}: {path} no longer reads {snippet!r}"


@pytest.mark.parametrize("name", sorted(t["name"] for t in yaml.safe_load(CONFIG.read_text())["controller_templates"]))
def test_destructive_templates_require_their_confirmation(name):
    template = templates()[name]
    questions = survey(template)
    extra = template.get("extra_vars") or {}
    for variable in confirmations_read(Path(template["playbook"]).name):
        rule = CONFIRMATIONS[variable]
        assert variable not in extra, f"{name} sets {variable} itself: nobody confirms"
        gate = rule["gate"]
        reachable = gate is None or gate in questions or (gate in extra and _bool_of(extra[gate]) is not False)
        harmless = rule["harmless"]
        if harmless and extra.get(harmless[0]) == harmless[1] and harmless[0] not in questions:
            reachable = False
        if not reachable:
            continue
        question = questions.get(variable)
        assert question, f"{name} can be destructive ({gate or 'always'}) but does not ask for {variable}"
        assert question.get("required") is True, f"{name}: the {variable} question must be required"
        assert _bool_of(question.get("default", "")) is not True, f"{name}: {variable} must not default to true"


def test_the_destructive_templates_are_the_ones_expected():
    """Guards the rule above: it must find the destructive templates, or it would pass vacuously."""
    asked = {
        name
        for name, t in templates().items()
        if any(v in survey(t) and survey(t)[v].get("required") for v in CONFIRMATIONS)
    }
    assert asked == {"opsbook restore", "opsbook rollback with database", "opsbook maintenance", "opsbook celery"}


def set_stats_keys(playbook: str) -> set[str]:
    """set_stats data keys in the task files of the roles the playbook uses."""
    keys: set[str] = set()
    roles = {role for role, _ in playbook_uses(playbook)[0]}
    for role in roles:
        for path in (ROOT / "roles" / role / "tasks").rglob("*.yml"):
            for task in _walk_tasks(_load(path)):
                if "ansible.builtin.set_stats" in task:
                    keys |= set(task["ansible.builtin.set_stats"]["data"])
    return keys


def known_to_validate() -> set[str]:
    from ansible_collections.opsbook.webstack.plugins.action.validate_run import declared_variables

    listed = yaml.safe_load((ROOT / "roles" / "validate" / "vars" / "main.yml").read_text(encoding="utf-8"))
    return declared_variables(ROOT / "roles") | set(listed["__validate_playbook_variables"])


def edges(workflow: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    nodes = {n["identifier"]: n for n in workflow["workflow_nodes"]}
    found = []
    for node in nodes.values():
        for kind in ("success_nodes", "failure_nodes", "always_nodes"):
            for child in (node.get("related") or {}).get(kind, []):
                assert child["identifier"] in nodes, f"{workflow['name']}: no node {child['identifier']}"
                found.append((node, nodes[child["identifier"]]))
    return found


@pytest.mark.parametrize("name", sorted(w["name"] for w in yaml.safe_load(CONFIG.read_text())["controller_workflows"]))
def test_workflows(name):
    from ansible_collections.opsbook.webstack.plugins.action.validate_run import readers, reported_variables

    workflow = next(w for w in config()["controller_workflows"] if w["name"] == name)
    asked = set(survey(workflow))
    prefixes = tuple(
        yaml.safe_load((ROOT / "roles" / "validate" / "defaults" / "main.yml").read_text())["validate_checked_prefixes"]
    )
    known = known_to_validate()
    for node in workflow["workflow_nodes"]:
        template = templates().get(node["unified_job_template"]["name"])
        assert template, f"{name}: node {node['identifier']} runs a template that does not exist"
        questions = survey(template)
        # A node's extra_data is accepted only for questions its template asks.
        assert set(node.get("extra_data") or {}) <= set(questions), f"{name}: {node['identifier']} extra_data"
        for variable, value in (node.get("extra_data") or {}).items():
            choices = questions[variable].get("choices")
            assert not choices or str(value) in choices, f"{name}: {node['identifier']} answers {variable}={value!r}"
        missing = [
            v
            for v, q in questions.items()
            if q.get("required") and "default" not in q and v not in asked and v not in (node.get("extra_data") or {})
        ]
        assert not missing, f"{name}: node {node['identifier']} leaves required questions unanswered: {missing}"
        # The workflow's survey answers reach every node: each must be a name the node's playbook accepts.
        for variable in asked:
            assert not variable.startswith(prefixes) or variable in known, f"{name}: {variable}"
    refused = set()
    for parent, child in edges(workflow):
        parent_playbook = Path(templates()[parent["unified_job_template"]["name"]]["playbook"]).name
        child_template = templates()[child["unified_job_template"]["name"]]
        passed = set_stats_keys(parent_playbook)
        assert passed, f"{name}: {parent_playbook}'s roles set no set_stats"
        # What the child's template reads from the parent's artifacts must be a set_stats key.
        for value in (child_template.get("extra_vars") or {}).values():
            for used in re.findall(r"\{\{\s*(\w+)", str(value)):
                assert used in passed, (
                    f"{name}: {child_template['name']} reads {used}, which {parent_playbook} never sets"
                )
        child_playbook = ROOT / "playbooks" / Path(child_template["playbook"]).name
        unknown = {k for k in passed if k.startswith(prefixes) and k not in known}
        assert unknown <= set(reported_variables(ROOT / "roles")), f"{name}: {sorted(unknown)}"
        refused |= set(readers(unknown, [child_playbook], ROOT / "roles"))
    assert refused == ARTIFACTS_VALIDATE_REFUSES.get(name, set()), (
        f"{name}: validate refuses these artifacts of the parent node: {sorted(refused)} "
        "(update ARTIFACTS_VALIDATE_REFUSES and docs/awx.md when validate learns them)"
    )


def test_the_drill_after_a_backup_reads_the_backup_id_it_took():
    drill = templates()["opsbook restore drill"]
    assert drill["extra_vars"]["restore_backup"] == "{{ backup_id | default('latest') }}"
    assert "backup_id" in set_stats_keys("backup.yml")


CONDITIONAL_KEYS = {"when", "that", "failed_when", "changed_when", "until"}


def _expressions(node: Any, conditional: bool = False):
    """The Jinja expressions in a task file's values: whole conditionals, and {{ }} / {% %} elsewhere."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _expressions(value, key in CONDITIONAL_KEYS)
    elif isinstance(node, list):
        for item in node:
            yield from _expressions(item, conditional)
    elif isinstance(node, str):
        if conditional:
            yield node
        else:
            yield from re.findall(r"\{\{.*?\}\}|\{%.*?%\}", node, re.DOTALL)


def test_bool_questions_are_read_through_the_bool_filter():
    """AWX sends a multiple-choice answer as a string: "false" is true to a bare `when: x`."""
    asked = {
        variable
        for template in templates().values()
        for variable, question in survey(template).items()
        if resolve(Path(template["playbook"]).name, variable).get("type") == "bool"
    }
    assert {"restore_confirm", "deploy_backup_before", "maintenance_vacuum"} <= asked
    files = [
        *(ROOT / "roles").glob("*/tasks/**/*.yml"),
        *(ROOT / "roles").glob("*/handlers/*.yml"),
        *PLAYBOOKS.glob("*.yml"),
    ]
    bare = []
    for path in files:
        for expression in _expressions(_load(path)):
            for variable in asked:
                for match in re.finditer(rf"(?<![\w.'\"]){variable}\b", expression):
                    rest = expression[match.end() :]
                    if not re.match(r"\s*(?:\|\s*default\((?:[^()]|\([^()]*\))*\)\s*)?\|\s*bool\b", rest):
                        bare.append(f"{path.relative_to(ROOT)}: {expression.strip()[:120]}")
    assert not bare, "bool survey variables used without | bool: " + "; ".join(sorted(set(bare)))
