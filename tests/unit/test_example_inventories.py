"""inventories/examples/<seed>/: one example inventory per seed runbook (issue 20 item 4).

For every directory under inventories/examples/:

- the real `ansible-playbook -i <copy> playbooks/validate.yml`, with the example's
  vault.yml.example given as extra vars (`-e @file`), passes on every host without connecting
  and prints no placeholder secret (test_validate's runner: a copy of the inventory with every
  host unreachable, run from outside the repository); an example whose Celery worker lost its
  queues is refused, naming app_workers;
- `ansible-inventory --list` parses it: the groups the playbooks need hold hosts, the secrets are
  references to the vault and the .example file is not read;
- every variable it sets is one a playbook or role reads, of the type the roles' argument specs
  declare; every vault_* it refers to has a CHANGE-ME placeholder; the retention policies, the
  thresholds and the schedules pass the collection's own checks (systemd-analyze for OnCalendar);
- every `ansible-playbook -i inventories/examples/...` command of the examples' README and of
  docs/inventory.md names a playbook that exists, variables validation accepts, and plays that
  find hosts in that example.
"""

from __future__ import annotations

import concurrent.futures
import functools
import json
import os
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_validate import (
    PLAYBOOKS,
    ROOT,
    Case,
    Run,
    check_no_connection,
    describe,
    edit_vars,
    hosts_of,
    known_variables,
    run_case,
    validated_hosts,
)

# One xdist worker takes the whole module, so the module's runs (about 3 s each) happen once.
pytestmark = pytest.mark.xdist_group("example_inventories")

EXAMPLES = ROOT / "inventories" / "examples"
NAMES = sorted(path.name for path in EXAMPLES.iterdir() if path.is_dir())
SEEDS = {"ujmp", "sims", "helpdesk", "loyalty", "pdf-smaller"}
DOCS = (EXAMPLES / "README.md", ROOT / "docs" / "inventory.md")
# Groups every playbook's plays use (schedule: schedule.yml's timers host).
GROUPS = ("lb", "app", "worker", "scheduler", "db", "broker", "schedule")
# Variables that are Ansible's own (connection, privilege escalation, interpreter).
ANSIBLE_OWN = re.compile(r"^ansible_")
VAULT_REF = re.compile(r"\bvault_[a-z0-9_]+\b")
COMMAND = re.compile(r"ansible-playbook -i inventories/examples/(\S+) playbooks/(\S+\.yml)(.*)$", re.MULTILINE)


def vault_file(example: Path) -> Path:
    return example / "group_vars" / "all" / "vault.yml.example"


def variables_of(example: Path) -> dict[str, Any]:
    """What the example sets: group_vars/all/*.yml, then the vars of hosts.yml (all, groups, hosts)."""
    found: dict[str, Any] = {}
    for path in sorted((example / "group_vars" / "all").glob("*.yml")):
        found.update(yaml.safe_load(path.read_text()) or {})

    def walk(group: dict[str, Any] | None) -> None:
        group = group or {}
        found.update(group.get("vars") or {})
        for host_vars in (group.get("hosts") or {}).values():
            found.update(host_vars or {})
        for child in (group.get("children") or {}).values():
            walk(child)

    walk(yaml.safe_load((example / "hosts.yml").read_text())["all"])
    return found


@functools.cache
def known() -> frozenset[str]:
    return frozenset(known_variables())


def unknown_names(names: set[str]) -> set[str]:
    """Names no playbook or role reads (Ansible's own variables and opsbook_group_* aside)."""
    return {n for n in names if n not in known() and not ANSIBLE_OWN.match(n) and not n.startswith("opsbook_group_")}


# --------------------------------------------------------------------------- the real runs


def validate_case(name: str, **changes: Any) -> Case:
    vault = vault_file(EXAMPLES / name)
    args = ("-e", f"@{vault}") if vault.is_file() else ()
    return Case(f"validate_{name}", f"example {name}", source=EXAMPLES / name, args=args, **changes)


def drop_queues(data: dict[str, Any]) -> None:
    for worker in data["app_workers"]:
        if worker["kind"] == "celery":
            del worker["queues"]


CASES = [
    *(validate_case(name, passes=True) for name in NAMES),
    *(
        Case(
            f"list_{name}", "ansible-inventory --list", source=EXAMPLES / name, command="ansible-inventory", copy=False
        )
        for name in NAMES
    ),
    Case(
        "queue_removed",
        "pdf-smaller with its Celery worker's queues removed: refused, naming app_workers and queues",
        source=EXAMPLES / "pdf-smaller",
        args=("-e", f"@{vault_file(EXAMPLES / 'pdf-smaller')}"),
        mutations=(edit_vars("main.yml", drop_queues),),
        expect=(r"app_workers item worker \(kind celery\) is invalid: .*non-empty\s+queues list",),
    ),
]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    cwd = tmp_path_factory.mktemp("not-the-repo")  # no ansible.cfg here or above
    workers = max(1, min(len(CASES), (os.cpu_count() or 1) + 1))
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {c.name: pool.submit(run_case, c, tmp_path_factory.mktemp(c.name), cwd) for c in CASES}
        return {name: future.result() for name, future in futures.items()}


def placeholders(name: str) -> set[str]:
    vault = vault_file(EXAMPLES / name)
    return {str(v) for v in (yaml.safe_load(vault.read_text()) or {}).values()} if vault.is_file() else set()


def test_every_seed_has_an_example() -> None:
    assert set(NAMES) >= SEEDS, NAMES


@pytest.mark.parametrize("name", NAMES)
def test_the_example_passes_validation(name: str, runs: dict[str, Run]) -> None:
    run = runs[f"validate_{name}"]
    assert run.returncode == 0, describe(run)
    assert validated_hosts(run).keys() == hosts_of(EXAMPLES / name), describe(run)
    assert "VALIDATE | App variables are well formed" in run.output, describe(run)
    check_no_connection(run)
    leaked = [value for value in placeholders(name) if value in run.output]
    assert not leaked, f"vault placeholder(s) in the output: {len(leaked)}\n{describe(run)}"


def test_an_example_without_queues_is_refused(runs: dict[str, Run]) -> None:
    run = runs["queue_removed"]
    spec = run.case
    assert run.returncode != 0, describe(run)
    for pattern in spec.expect:
        assert re.search(pattern, run.output), f"{spec.why}: output does not match {pattern!r}\n{describe(run)}"
    check_no_connection(run)


@pytest.mark.parametrize("name", NAMES)
def test_ansible_inventory_lists_the_example(name: str, runs: dict[str, Run]) -> None:
    run = runs[f"list_{name}"]
    assert run.returncode == 0, describe(run)
    listing = json.loads(run.output)
    for group in GROUPS:
        assert listing.get(group, {}).get("hosts"), f"{name}: group {group} has no host"
    assert len(listing["scheduler"]["hosts"]) == 1 and len(listing["db"]["hosts"]) == 1, listing
    hostvars = listing["_meta"]["hostvars"][listing["app"]["hosts"][0]]
    assert hostvars["app_db_password"] == "{{ vault_app_db_password }}", hostvars["app_db_password"]
    assert not [n for n in hostvars if n.startswith("vault_")], "vault.yml.example was read as variables"
    assert not [value for value in placeholders(name) if value in run.output]


# --------------------------------------------------------------------------- the variables


@pytest.mark.parametrize("name", NAMES)
def test_every_variable_is_one_opsbook_reads(name: str) -> None:
    """A misspelt or planned-only name would be ignored by every play: a gap is a `# not yet:`
    comment, never a variable."""
    names = set(variables_of(EXAMPLES / name))
    assert {"app_name", "app_workers"} <= names
    # The seeds' examples carry their runbook's cron lines.
    assert name not in SEEDS or "schedule_jobs" in names
    assert not unknown_names(names), f"{name}: variables no playbook or role reads: {sorted(unknown_names(names))}"


def test_an_unknown_variable_is_caught() -> None:
    """The check above can fail: a misspelling and a planned name are both reported."""
    names = set(variables_of(EXAMPLES / "ujmp")) | {"backup_retension", "app_redis_compose_service"}
    assert unknown_names(names) == {"backup_retension", "app_redis_compose_service"}


@pytest.mark.parametrize("name", NAMES)
def test_the_vault_holds_every_reference_as_a_placeholder(name: str) -> None:
    example = EXAMPLES / name
    text = "".join(p.read_text() for p in [example / "hosts.yml", *(example / "group_vars" / "all").glob("*.yml")])
    # Commented-out references (`# ansible_become_password: "{{ vault_... }}"`) need no placeholder.
    referenced = set(VAULT_REF.findall("\n".join(line.split("#")[0] for line in text.splitlines())))
    vault = yaml.safe_load(vault_file(example).read_text()) or {} if vault_file(example).is_file() else {}
    assert referenced or name not in SEEDS, f"{name}: no secret comes from the vault"
    assert referenced == set(vault), f"{name}: referenced {sorted(referenced)}, vault {sorted(vault)}"
    assert all(str(value).startswith("CHANGE-ME-") for value in vault.values()), f"{name}: a real-looking secret"


def role_specs() -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """{variable: [(role entry point, option spec), ...]} from every roles/*/meta/argument_specs.yml."""
    specs: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for path in sorted(ROOT.glob("roles/*/meta/argument_specs.yml")):
        for entry, spec in (yaml.safe_load(path.read_text())["argument_specs"] or {}).items():
            for option, option_spec in (spec.get("options") or {}).items():
                specs.setdefault(option, []).append((f"{path.parts[-3]}:{entry}", option_spec))
    return specs


def type_only(spec: dict[str, Any]) -> dict[str, Any]:
    """An option's spec without required and default: the example sets it, so only its shape counts."""
    kept = {k: v for k, v in spec.items() if k in ("type", "elements", "choices", "no_log", "aliases")}
    if spec.get("options"):
        kept["options"] = {k: type_only(v) for k, v in spec["options"].items()}
    return kept


def type_problems(variables: dict[str, Any]) -> list[str]:
    """Each value checked against every argument spec that declares its variable, as Ansible checks a role's."""
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

    specs = role_specs()
    problems = []
    for variable, value in variables.items():
        if isinstance(value, str) and "{{" in value:
            continue  # a reference (the vault, a group's first host): Ansible types it when it renders
        for where, spec in specs.get(variable, []):
            result = ArgumentSpecValidator({variable: type_only(spec)}).validate({variable: value})
            problems += [f"{where} {variable}: {message}" for message in result.error_messages]
    return problems


@pytest.mark.parametrize("name", NAMES)
def test_every_value_has_the_type_the_roles_declare(name: str) -> None:
    problems = type_problems(variables_of(EXAMPLES / name))
    assert not problems, f"{name}: " + "; ".join(problems)


def test_a_wrong_type_is_caught() -> None:
    """The check above can fail: the seeds' own plain SQL format, and a schedule given as a mapping."""
    variables = {**variables_of(EXAMPLES / "ujmp"), "backup_format": "plain", "schedule_jobs": {"backup": "02:00"}}
    problems = type_problems(variables)
    assert len(problems) == 2, problems
    assert any(
        "backup:main backup_format: value of backup_format must be one of: custom, directory" in p for p in problems
    )
    assert any(p.startswith("schedule:main schedule_jobs: ") for p in problems), problems


@pytest.mark.parametrize("name", NAMES)
def test_policies_and_thresholds_pass_the_collections_checks(name: str) -> None:
    from ansible_collections.opsbook.webstack.plugins.module_utils.health import thresholds
    from ansible_collections.opsbook.webstack.plugins.module_utils.retention import check_policy

    found = variables_of(EXAMPLES / name)
    for variable in ("backup_retention", "backup_store_retention", "backup_s3_retention"):
        if isinstance(found.get(variable), dict):
            assert any(check_policy(found[variable]).values()), f"{name}: {variable} keeps everything"
    thresholds(found.get("maintenance_thresholds"))  # raises HealthError naming the metric


def schedule_job_keys() -> set[str]:
    return set(yaml.safe_load((ROOT / "roles" / "schedule" / "vars" / "main.yml").read_text())["__schedule_job_keys"])


@pytest.mark.parametrize("name", NAMES)
def test_the_schedules_run_real_playbooks_at_valid_times(name: str) -> None:
    found = variables_of(EXAMPLES / name)
    jobs = found.get("schedule_jobs")
    if name not in SEEDS and not jobs:
        return  # an example without timers (the seeds' all have some: see above)
    assert found.get("schedule_inventory") == f"inventories/examples/{name}"
    assert jobs and len({job["name"] for job in jobs}) == len(jobs), jobs
    for job in jobs:
        assert set(job) <= schedule_job_keys(), job
        assert re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,63}", job["name"]), job
        assert (PLAYBOOKS / job["playbook"]).is_file(), job
        assert not unknown_names(set(job.get("extra_vars") or {})), job
    # systemd's own parser, as the schedule role checks on the host.
    result = subprocess.run(
        ["systemd-analyze", "calendar", *(job["on_calendar"] for job in jobs)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, f"{name}: {result.stdout}{result.stderr}"


# --------------------------------------------------------------------------- the documented commands


def documented_commands() -> list[tuple[str, str, str, str]]:
    """(source file, example, playbook, rest of the line) of every command of the docs on an example."""
    found = []
    for path in DOCS:
        for example, playbook, rest in COMMAND.findall(path.read_text()):
            found.append((path.name, example, playbook, rest))
    return found


def matches(pattern: str, listing: dict[str, Any]) -> set[str]:
    """The hosts a play's `hosts:` matches in an ansible-inventory listing (the forms the playbooks use)."""
    default = re.fullmatch(r"\{\{\s*\w+\s*\|\s*default\('([\w-]+)'\)\s*\}\}", pattern)
    pattern = default.group(1) if default else pattern
    hosts: set[str] = set()
    for part in pattern.split(":"):
        indexed = re.fullmatch(r"([\w-]+)\[(\d+)\]", part)
        if part == "localhost":
            hosts.add("localhost")  # implicit, always there
        elif part == "all":
            hosts |= set(listing["_meta"]["hostvars"])
        elif indexed:
            members = listing.get(indexed.group(1), {}).get("hosts", [])
            hosts |= set(members[int(indexed.group(2)) : int(indexed.group(2)) + 1])
        else:
            hosts |= set(listing.get(part, {}).get("hosts", []))
    return hosts


def test_the_documented_commands_work_on_their_example(runs: dict[str, Run]) -> None:
    commands = documented_commands()
    documented = {example for _, example, _, _ in commands}
    assert SEEDS <= documented <= set(NAMES), f"documented {sorted(documented)}, examples {NAMES}"
    runtime = set(
        yaml.safe_load((ROOT / "roles" / "validate" / "defaults" / "main.yml").read_text())["validate_runtime_groups"]
    )
    problems = []
    for source, example, playbook, rest in commands:
        where = f"{source}: {example} {playbook}"
        if not (PLAYBOOKS / playbook).is_file():
            problems.append(f"{where}: no such playbook")
            continue
        args = shlex.split(rest)
        given = [args[i + 1] for i, arg in enumerate(args[:-1]) if arg in ("-e", "--extra-vars")]
        files = [value[1:] for value in given if value.startswith("@")]
        problems += [f"{where}: -e @{file}: no such file" for file in files if not (ROOT / file).is_file()]
        names = {value.split("=")[0] for value in given if not value.startswith("@")}
        problems += [f"{where}: -e {n} is unknown to validation" for n in unknown_names(names)]
        listing = json.loads(runs[f"list_{example}"].output)
        for play in yaml.safe_load((PLAYBOOKS / playbook).read_text()):
            pattern = play.get("hosts")
            if pattern and pattern not in runtime and not matches(pattern, listing):
                problems.append(f"{where}: play {play.get('name')!r} (hosts: {pattern}) matches no host")
    assert not problems, "\n".join(problems)


def refused_under_compose(playbook: str, rest: str) -> bool:
    """What tests/unit/test_compose_refusals.py shows refused for app_runtime compose (issue 20 item 1):
    restart.yml and celery.yml (restore.yml runs under compose since the database can live in a container)."""
    return playbook in ("restart.yml", "celery.yml")


def test_no_documented_command_is_one_compose_refuses() -> None:
    """A compose example's README lists only what runs on it; the rest is named in prose as not yet."""
    compose = {n for n in NAMES if variables_of(EXAMPLES / n).get("app_runtime") == "compose"}
    assert {"sims", "helpdesk", "loyalty", "pdf-smaller"} <= compose, compose
    refused = [
        f"{source}: {example} {playbook}{rest}"
        for source, example, playbook, rest in documented_commands()
        if example in compose and refused_under_compose(playbook, rest)
    ]
    assert not refused, "\n".join(refused)
    assert refused_under_compose("restart.yml", " -e restart_scope=web")
    assert not refused_under_compose("restore.yml", " -e restore_confirm=true")


def test_a_play_without_hosts_is_caught(runs: dict[str, Run]) -> None:
    """The check above can fail: a group the example lacks matches nothing."""
    listing = json.loads(runs["list_ujmp"].output)
    assert matches("db[0]", listing) == {"db.ujmp.example.com"}
    assert matches("{{ schedule_host | default('schedule') }}", listing) == {"ops.ujmp.example.com"}
    assert matches("backup_store", listing) == set()
