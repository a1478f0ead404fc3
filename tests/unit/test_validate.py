"""playbooks/validate.yml (roles/validate) against broken inventories, as a user would run it.

Each case copies an inventory (inventories/lab, or the production example) to a temporary
directory, breaks one thing, and runs `ansible-playbook` from a directory outside the
repository, so the project's ansible.cfg is not read (as in AWX) and the collection must
resolve through playbooks/collections/. Every host of the copy is made unreachable (ssh to
127.0.0.1 port 1), so a case passes only if validation decides without connecting, and a
playbook that imports validate.yml stops there instead of reaching a host.

Each case asserts the exit code, that the output names the problem, that nothing was
unreachable (no connection was tried), and that no secret value of the inventories appears
in the output. The runs (~2-5 s each) go in parallel, once per module.

Issue 19: cases for variables given with -e (unknown names refused with the closest known
ones), for --limit leaving a play without hosts, and for groups renamed with opsbook_group_*;
then a probe of every `hosts:` pattern of the playbooks on the lab's groups and on renamed ones
(same hosts), a real playbook reaching a renamed group's host (the one test that connects,
to an unreachable port), and static checks that the names the docs pass with -e and the names
the playbooks read are known to validation.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PLAYBOOKS = ROOT / "playbooks"
LAB = ROOT / "inventories" / "lab"
PRODUCTION = ROOT / "inventories" / "production"
LAB_HOSTS = ("lb1", "app1", "app2", "db1")
PRODUCTION_GROUPS = ("lb", "app", "worker", "scheduler", "db", "broker", "backup_store")

# Host variables that make every connection fail at once: nothing listens on port 1.
UNREACHABLE = {"ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": 1}

RECAP = re.compile(r"^(\S+)\s+: ok=\d+\s+changed=\d+\s+unreachable=(\d+)\s+failed=(\d+)", re.MULTILINE)
PROVISION_PLAY = "PLAY [Provision hosts for their groups]"


# --------------------------------------------------------------------------- inventory edits


def edit_yaml(path: Path, change: Callable[[Any], None]) -> None:
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def groups_of(inventory: Path) -> dict[str, Any]:
    return yaml.safe_load((inventory / "hosts.yml").read_text())["all"]["children"]


def hosts_of(inventory: Path) -> set[str]:
    def walk(group: dict[str, Any] | None) -> Iterator[str]:
        group = group or {}
        yield from (group.get("hosts") or {})
        for child in (group.get("children") or {}).values():
            yield from walk(child)

    return set(walk(yaml.safe_load((inventory / "hosts.yml").read_text())["all"]))


def remove_group(name: str) -> Callable[[Path], None]:
    def mutate(inventory: Path) -> None:
        edit_yaml(inventory / "hosts.yml", lambda data: data["all"]["children"].pop(name))

    return mutate


def add_to_group(group: str, host: str) -> Callable[[Path], None]:
    def mutate(inventory: Path) -> None:
        edit_yaml(inventory / "hosts.yml", lambda data: data["all"]["children"][group]["hosts"].update({host: None}))

    return mutate


def add_group(group: str, host: str) -> Callable[[Path], None]:
    def mutate(inventory: Path) -> None:
        edit_yaml(
            inventory / "hosts.yml", lambda data: data["all"]["children"].update({group: {"hosts": {host: None}}})
        )

    return mutate


def edit_vars(file: str, change: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    def mutate(inventory: Path) -> None:
        edit_yaml(inventory / "group_vars" / "all" / file, change)

    return mutate


def merge_host_vars(inventory: Path, host: str, values: dict[str, Any]) -> None:
    path = inventory / "host_vars" / f"{host}.yml"
    path.parent.mkdir(exist_ok=True)
    data = (yaml.safe_load(path.read_text()) if path.exists() else None) or {}
    path.write_text(yaml.safe_dump({**data, **values}))


def set_host_var(host: str, name: str, value: Any) -> Callable[[Path], None]:
    def mutate(inventory: Path) -> None:
        merge_host_vars(inventory, host, {name: value})

    return mutate


# The lab's groups under other names, each named by its opsbook_group_* variable.
RENAMED = {
    "lb": "balancers",
    "app": "webservers",
    "worker": "workers",
    "scheduler": "beat",
    "db": "database",
    "broker": "redis",
    "backup_store": "copies",
}


def rename_groups(inventory: Path) -> None:
    def hosts(data: dict[str, Any]) -> None:
        children = data["all"]["children"]
        data["all"]["children"] = {RENAMED.get(name, name): group for name, group in children.items()}

    edit_yaml(inventory / "hosts.yml", hosts)
    edit_yaml(
        inventory / "group_vars" / "all" / "app.yml",
        lambda d: d.update({f"opsbook_group_{name}": renamed for name, renamed in RENAMED.items()}),
    )


def vault_from_example(inventory: Path) -> None:
    shutil.copy(inventory / "group_vars" / "all" / "vault.yml.example", inventory / "group_vars" / "all" / "vault.yml")


def make_unreachable(inventory: Path) -> None:
    """Host variables beat group_vars (the lab's docker connection), so every host gets them."""
    for host in hosts_of(inventory):
        merge_host_vars(inventory, host, UNREACHABLE)


def secrets_of(*inventories: Path) -> set[str]:
    """Values of the vault_* variables: the lab's vault.yml and the production example."""
    values = set()
    for path in inventories:
        data = yaml.safe_load(path.read_text()) or {}
        values |= {str(v) for k, v in data.items() if k.startswith("vault_")}
    return values


SECRETS = secrets_of(
    LAB / "group_vars" / "all" / "vault.yml",
    PRODUCTION / "group_vars" / "all" / "vault.yml.example",
)


# --------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class Case:
    name: str
    why: str
    playbook: str = "validate.yml"
    source: Path = LAB
    mutations: tuple[Callable[[Path], None], ...] = ()
    passes: bool = False
    expect: tuple[str, ...] = ()  # regular expressions the output must contain
    verbosity: int = 0
    command: str = "ansible-playbook"
    copy: bool = True
    args: tuple[str, ...] = ()  # more ansible-playbook arguments (-e, --limit)


# Two slots on the lab's app group, valid: what in-place playbooks must refuse.
SLOTS = '{"app_slots": {"blue": {"group": "app", "port": 8001}, "green": {"group": "app", "port": 8002}}}'

CASES = [
    Case(
        "lab_ok",
        "the unmodified lab passes without connecting, without the repo's ansible.cfg, printing no secret at -vvv",
        passes=True,
        verbosity=3,
        expect=(r"config file = ",),
    ),
    Case(
        "missing_db",
        "group db missing: the message names the group",
        mutations=(remove_group("db"),),
        expect=(r"missing required group\(s\) db\b",),
    ),
    Case(
        "scheduler_two_hosts",
        "two hosts in scheduler: the message names the group and both hosts",
        mutations=(add_to_group("scheduler", "app2"),),
        expect=(r"Group 'scheduler' must hold exactly one host, it holds 2: app1, app2",),
    ),
    Case(
        "vault_var_undefined",
        "vault_app_db_password missing from vault.yml: app_db_password cannot be resolved",
        mutations=(edit_vars("vault.yml", lambda d: d.pop("vault_app_db_password")),),
        expect=(r"Missing variable\(s\) app_db_password \(", r"vault file present"),
    ),
    Case(
        "app_var_missing",
        "app_db_password not set at all",
        mutations=(edit_vars("app.yml", lambda d: d.pop("app_db_password")),),
        expect=(r"Missing variable\(s\) app_db_password \(",),
    ),
    Case(
        "http_port_not_a_port",
        'app_http_port: "not-a-port"',
        mutations=(edit_vars("app.yml", lambda d: d.update(app_http_port="not-a-port")),),
        expect=(r"argument 'app_http_port' is of type str and we were unable to convert to int",),
    ),
    # One task checks every host from the first (lb1), each with its own variables.
    Case(
        "http_port_bad_on_one_host",
        "app_http_port wrong in app2's host_vars only: the type check names app2",
        mutations=(set_host_var("app2", "app_http_port", "not-a-port"),),
        expect=(
            r"failed: \[lb1\] \(item=app2\)",
            r"argument 'app_http_port' is of type str and we were unable to convert to int",
        ),
    ),
    Case(
        "app_name_bad_on_one_host",
        "app_name malformed in app2's host_vars only: the message names app2 alone",
        mutations=(set_host_var("app2", "app_name", "Bad Name"),),
        expect=(r"app_name .*\(on app2\)",),
    ),
    Case(
        "secret_key_on_first_host_only",
        "app_secret_key moved from group_vars to lb1's host_vars: the other hosts miss it, named",
        mutations=(
            edit_vars("app.yml", lambda d: d.pop("app_secret_key")),
            set_host_var("lb1", "app_secret_key", "only-on-lb1-0123456789abcdef0123456789abcdef"),
        ),
        expect=(r"Missing variable\(s\) app_secret_key \(on app1, app2, db1\)",),
    ),
    Case(
        "celery_app_missing_with_celery_workers",
        "app_celery_app unset while app_workers has Celery workers: refused naming it",
        mutations=(edit_vars("app.yml", lambda d: d.pop("app_celery_app")),),
        expect=(r"app_celery_app must name the Celery application \(celery -A <name>\)",),
    ),
    Case(
        "no_celery_app_without_celery_workers",
        "an app with RQ workers only and no app_celery_app passes",
        mutations=(
            edit_vars("app.yml", lambda d: d.pop("app_celery_app")),
            edit_vars(
                "app.yml",
                lambda d: d.update(
                    app_workers=[
                        {"name": "rq", "kind": "rq", "queues": ["default"]},
                        {"name": "rq-scheduler", "kind": "rq-scheduler"},
                    ]
                ),
            ),
        ),
        passes=True,
    ),
    Case(
        "deploy_phase_removed",
        "deploy_phase set in the inventory (removed with the deploy role's entry points): named with its replacement",
        mutations=(edit_vars("app.yml", lambda d: d.update(deploy_phase="prepare")),),
        expect=(
            r"Variable 'deploy_phase' is no longer read; use 'the deploy role's entry points .*"
            r"prepare is install_and_migrate",
        ),
    ),
    Case(
        "worker_kind_cron",
        "an app_workers item of kind cron",
        mutations=(edit_vars("app.yml", lambda d: d["app_workers"].append({"name": "nightly", "kind": "cron"})),),
        expect=(r"app_workers item nightly \(kind cron\) is invalid", r"kind celery, celery-beat, rq or rq-scheduler"),
    ),
    Case(
        "two_beats",
        "two celery-beat workers",
        mutations=(edit_vars("app.yml", lambda d: d["app_workers"].append({"name": "beat2", "kind": "celery-beat"})),),
        expect=(r"app_workers declares \S+, \S+ as celery-beat: beat must run exactly once",),
    ),
    Case(
        "rq_workers_ok",
        "RQ workers (two units of one, a second with a worker class) and one RQ scheduler pass",
        mutations=(
            edit_vars(
                "app.yml",
                lambda d: d["app_workers"].extend(
                    [
                        {"name": "rq", "kind": "rq", "queues": ["default", "emails"], "count": 2},
                        {
                            "name": "rq-simple",
                            "kind": "rq",
                            "queues": ["low"],
                            "worker_class": "rq.worker.SimpleWorker",
                        },
                        {"name": "rq-scheduler", "kind": "rq-scheduler"},
                    ]
                ),
            ),
        ),
        passes=True,
    ),
    Case(
        "rq_worker_bad_fields",
        "RQ workers without queues, with a concurrency, a zero count, a scheduler with a count, a bad worker class",
        mutations=(
            edit_vars(
                "app.yml",
                lambda d: d["app_workers"].extend(
                    [
                        {"name": "rq-noqueue", "kind": "rq"},
                        {"name": "rq-conc", "kind": "rq", "queues": ["default"], "concurrency": 4},
                        {"name": "rq-zero", "kind": "rq", "queues": ["default"], "count": 0},
                        {"name": "rq-sched", "kind": "rq-scheduler", "count": 2},
                        {"name": "rq-class", "kind": "rq", "queues": ["default"], "worker_class": "not a class"},
                        {"name": "rq-strq", "kind": "rq", "queues": "default"},
                    ]
                ),
            ),
        ),
        expect=(
            r"app_workers item rq-noqueue \(kind rq\) needs queues",
            r"app_workers item rq-conc \(kind rq\) sets concurrency, which RQ has not",
            r"app_workers item rq-zero \(kind rq\) count \(0\) is invalid",
            r"app_workers item rq-sched \(kind rq-scheduler\) count \(2\) is invalid: an rq-scheduler runs once",
            r"app_workers item rq-class \(kind rq\) worker_class \(not a class\) must be a dotted Python path",
            r"app_workers item rq-strq \(kind rq\) queues \(default\) must be a list",
        ),
    ),
    Case(
        "rq_unit_names_clash",
        "an rq item with count 2 and a worker named rq-2: both would be journal-rq-2.service",
        mutations=(
            edit_vars(
                "app.yml",
                lambda d: d["app_workers"].extend(
                    [
                        {"name": "rq", "kind": "rq", "queues": ["default"], "count": 2},
                        {"name": "rq-2", "kind": "rq", "queues": ["low"]},
                    ]
                ),
            ),
        ),
        expect=(r"app_workers gives two units the name journal-rq-2\.service: worker names must differ",),
    ),
    Case(
        "two_rq_schedulers",
        "two rq-scheduler workers",
        mutations=(
            edit_vars(
                "app.yml",
                lambda d: d["app_workers"].extend(
                    [{"name": "rq-sched", "kind": "rq-scheduler"}, {"name": "rq-sched2", "kind": "rq-scheduler"}]
                ),
            ),
        ),
        expect=(r"app_workers declares rq-sched, rq-sched2 as rq-scheduler: the RQ scheduler must run exactly once",),
    ),
    Case(
        "rq_worker_with_slots",
        "an RQ worker with blue-green slots: refused naming app_slots",
        mutations=(
            edit_vars(
                "app.yml", lambda d: d["app_workers"].append({"name": "rq", "kind": "rq", "queues": ["default"]})
            ),
            edit_vars(
                "app.yml",
                lambda d: d.update(
                    app_slots={"blue": {"group": "app", "port": 8101}, "green": {"group": "app", "port": 8102}}
                ),
            ),
        ),
        expect=(r"app_workers item rq is kind rq but app_slots is set",),
    ),
    Case(
        "removed_variable_set",
        "a variable a later release removed is still set: the message names its replacement",
        mutations=(
            edit_vars(
                "app.yml", lambda d: d.update(validate_removed_variables=[{"name": "app_port", "use": "app_http_port"}])
            ),
            edit_vars("app.yml", lambda d: d.update(app_port=8000)),
        ),
        expect=(r"Variable 'app_port' is no longer read; use 'app_http_port' instead",),
    ),
    Case(
        "slots_without_green",
        "app_slots with blue only: the message names app_slots and the keys it needs",
        mutations=(edit_vars("app.yml", lambda d: d.update(app_slots={"blue": {"group": "app", "port": 8101}})),),
        expect=(r"app_slots must have exactly the keys blue and green, got \[.blue.\]",),
    ),
    Case(
        "slots_same_port",
        "blue_green.yml with both slots on the app group and one port: refused in validation, no host contacted",
        playbook="blue_green.yml",
        args=(
            "-e",
            '{"app_slots": {"blue": {"group": "app", "port": 8001}, "green": {"group": "app", "port": 8001}}}',
            "-e",
            "deploy_ref=v2",
        ),
        expect=(r"slots on the same hosts need different ports",),
    ),
    Case(
        "deploy_refuses_slots",
        "deploy.yml for an app with blue-green slots: refused by the deploy role's first check, no host contacted",
        playbook="deploy.yml",
        args=("-e", SLOTS, "-e", "deploy_ref=v2"),
        expect=(r"app_slots set: deploy with playbooks/blue_green\.yml",),
    ),
    Case(
        "blue_green_input_refused",
        "blue_green.yml with blue_green_confirm_requests=0: the role's input check (once per play) stops the run",
        playbook="blue_green.yml",
        args=("-e", SLOTS, "-e", "deploy_ref=v2", "-e", "blue_green_confirm_requests=0"),
        expect=(
            r"Bad blue_green input \(nothing was changed\)",
            r"blue_green_confirm_requests > 0 \(got 0\)",
            r"lb1 +: ok=\d+ +changed=0 +unreachable=0 +failed=1",
            # The run stops there: no later task of the play starts on any host.
            r"fatal: \[lb1\]: FAILED! => \{\"assertion\": \"blue_green_confirm_requests[^\n]*\n\s*\nPLAY RECAP",
        ),
    ),
    Case(
        "restore_refuses_slots",
        "restore.yml for an app with blue-green slots: refused before the backup is read, no host contacted",
        playbook="restore.yml",
        args=("-e", SLOTS, "-e", "restore_confirm=true"),
        expect=(r"restore\.yml does not restore an app with blue-green slots",),
    ),
    Case(
        "several_problems_at_once",
        "a bad app_name, a worker of kind cron and two beats are all reported in one run",
        mutations=(
            edit_vars("app.yml", lambda d: d.update(app_name="Journal")),
            edit_vars("app.yml", lambda d: d["app_workers"].append({"name": "nightly", "kind": "cron"})),
            edit_vars("app.yml", lambda d: d["app_workers"].append({"name": "beat2", "kind": "celery-beat"})),
        ),
        expect=(
            r"app_name \(Journal\) and app_user \(\S+\) must be lower-case names",
            r"app_workers item nightly \(kind cron\) is invalid",
            r"app_workers declares \S+, beat2 as celery-beat",
        ),
    ),
    Case(
        "provision_missing_group",
        "provision.yml with group db missing stops in validation, before the provision play",
        playbook="provision.yml",
        mutations=(remove_group("db"),),
        expect=(r"missing required group\(s\) db\b",),
    ),
    Case(
        "provision_one_host_invalid",
        "provision.yml where only app2 has a bad app_http_port stops every host, not only app2",
        playbook="provision.yml",
        mutations=(set_host_var("app2", "app_http_port", "not-a-port"),),
        expect=(r"argument 'app_http_port' is of type str",),
    ),
    Case(
        "production_without_vault",
        "the production example as shipped (vault.yml.example only) fails naming the vault variable",
        source=PRODUCTION,
        expect=(r"Missing variable\(s\) app_db_password, app_secret_key, app_redis_password \(",),
    ),
    Case(
        "production_with_vault",
        "the production example with vault.yml made from vault.yml.example passes",
        source=PRODUCTION,
        mutations=(vault_from_example,),
        passes=True,
    ),
    Case(
        "production_inventory_lists",
        "ansible-inventory -i inventories/production --list parses the example as it is",
        source=PRODUCTION,
        command="ansible-inventory",
        copy=False,
        passes=True,
    ),
    # Issue 19 item 13: a misspelt -e variable is ignored by every play, and the run ends ok.
    Case(
        "extra_var_misspelt",
        "-e deploy_reff=v2: refused, naming deploy_ref",
        playbook="deploy.yml",
        args=("-e", "deploy_reff=v2"),
        expect=(r"Unknown variable 'deploy_reff' given with -e: did you mean 'deploy_ref'",),
    ),
    Case(
        "extra_var_rollback_confirm_misspelt",
        "-e rollback_confrim=journal on rollback.yml: refused, naming the confirmation variable rollback.yml reads",
        playbook="rollback.yml",
        args=("-e", "rollback_confrim=journal"),
        expect=(r"Unknown variable 'rollback_confrim' given with -e: did you mean 'rollback_confirm'",),
    ),
    Case(
        "extra_var_rollback_old_name",
        "-e rollback_restore_database=true (rollback.yml's name before issue 19): refused, naming rollback_restore_db",
        playbook="rollback.yml",
        args=("-e", "rollback_restore_database=true"),
        expect=(r"Unknown variable 'rollback_restore_database' given with -e: did you mean 'rollback_restore_db'",),
    ),
    Case(
        "extra_vars_several_unknown",
        "three unknown -e variables, as JSON and key=value, all named in one run; other prefixes are left alone",
        args=("-e", '{"backup_fromat": "custom", "restore_confrim": true}', "-e", "deploy_serail=2 my_own_var=1"),
        expect=(
            r"Unknown variable 'backup_fromat' given with -e: did you mean 'backup_format'",
            r"Unknown variable 'deploy_serail' given with -e: did you mean 'deploy_serial'",
            r"Unknown variable 'restore_confrim' given with -e: did you mean 'restore_confirm'",
        ),
    ),
    Case(
        "extra_vars_known_pass",
        "known -e variables of roles (argument specs, defaults) and of playbooks pass",
        args=("-e", "deploy_ref=v2 deploy_serial=2 deploy_backup_before=true backup_format=custom rollback_release=x"),
        passes=True,
    ),
    # Issue 19 item 14: a play that matches no host is skipped and the run ends ok.
    Case(
        "limit_leaves_plays_without_hosts",
        "deploy.yml --limit db1: the app plays would match no host; validation fails naming them and the hosts to add",
        playbook="deploy.yml",
        args=("-e", "deploy_ref=v2", "--limit", "db1"),
        expect=(
            r"With --limit db1, plays 'Install the release', .* of deploy.yml \(hosts: app:worker:scheduler\)"
            r" match no host and would do nothing while the run ends ok. Add app1 or app2 to --limit",
        ),
    ),
    Case(
        "limit_leaves_the_report_play_without_hosts",
        "health.yml --limit app1: the report play on localhost would be skipped",
        playbook="health.yml",
        args=("--limit", "app1"),
        expect=(r"play 'Health report' of health.yml \(hosts: localhost\) matches no host",),
    ),
    Case(
        "renamed_groups",
        "the lab's groups renamed with opsbook_group_*: validation passes",
        mutations=(rename_groups,),
        passes=True,
    ),
    Case(
        "renamed_group_beside_a_stranger",
        "opsbook_group_app: webservers while a group app holds another host: refused, naming both",
        mutations=(rename_groups, add_group("app", "lb1")),
        expect=(r"Group 'app' holds lb1, not in 'webservers' \(opsbook_group_app\)",),
    ),
]


@dataclass
class Run:
    case: Case
    inventory: Path
    argv: list[str]
    returncode: int
    output: str
    seconds: float


def ansible_env() -> dict[str, str]:
    """The runner's environment minus every ANSIBLE_* setting (an ANSIBLE_CONFIG would defeat the point)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", NO_COLOR="1", PATH=f"{BIN}:{env.get('PATH', '')}")
    return env


def run_case(case: Case, workdir: Path, cwd: Path) -> Run:
    if case.copy:
        inventory = workdir / "inventory"
        shutil.copytree(case.source, inventory)
        for mutate in case.mutations:
            mutate(inventory)
        make_unreachable(inventory)
    else:
        inventory = case.source
    if case.command == "ansible-inventory":
        argv = [str(BIN / "ansible-inventory"), "-i", str(inventory), "--list"]
    else:
        argv = [str(BIN / "ansible-playbook"), "-i", str(inventory), str(PLAYBOOKS / case.playbook)]
        argv += ["-" + "v" * case.verbosity] if case.verbosity else []
        argv += list(case.args)
    started = time.monotonic()
    result = subprocess.run(
        argv,
        cwd=cwd,
        env=ansible_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=180,
    )
    return Run(case, inventory, argv, result.returncode, result.stdout, time.monotonic() - started)


def selected_cases(request: pytest.FixtureRequest) -> list[Case]:
    """Only the cases this session will test, so `-k scheduler` runs one playbook, not all."""
    names = {
        item.callspec.params["case"]
        for item in request.session.items
        if item.module is request.module and "case" in getattr(getattr(item, "callspec", None), "params", {})
    }
    return [case for case in CASES if case.name in names]


@pytest.fixture(scope="module")
def runs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    cwd = tmp_path_factory.mktemp("not-the-repo")  # no ansible.cfg here or above
    assert not (cwd / "ansible.cfg").exists()
    cases = selected_cases(request)
    # Each run is mostly one busy Python process; one more than the cores keeps them all fed.
    workers = max(1, min(len(cases), (os.cpu_count() or 1) + 1))
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {case.name: pool.submit(run_case, case, tmp_path_factory.mktemp(case.name), cwd) for case in cases}
        return {name: future.result() for name, future in futures.items()}


# --------------------------------------------------------------------------- checks


def describe(run: Run) -> str:
    return f"{' '.join(run.argv)}\nexit {run.returncode} after {run.seconds:.1f} s; output:\n{run.output[-6000:]}"


def check_no_secret(run: Run) -> None:
    leaked = sorted(secret for secret in SECRETS if secret in run.output)
    assert not leaked, f"secret value(s) of vault_* variables in the output: {len(leaked)}\n{describe(run)}"


TYPES_TASK = "VALIDATE | App variables have their types on the other hosts]"
ITEM = re.compile(r"^ok: \[(\S+)\] => \(item=([^)\s]+)\)", re.MULTILINE)


def validated_hosts(run: Run) -> dict[str, str]:
    """{host: failed count} for every host the validation play checked, all with 0 failures.

    The play runs once, on the first host (run_once), and checks the other hosts' variables in one
    task whose items name them; the recap lists the first host only."""
    recap = {host: failed for host, _, failed in RECAP.findall(run.output)}
    assert set(recap.values()) <= {"0"}, describe(run)
    assert TYPES_TASK in run.output, describe(run)
    section = run.output.split(TYPES_TASK, 1)[1].split("TASK [", 1)[0]
    others = {item for host, item in ITEM.findall(section) if host in recap}
    assert not others & set(recap), describe(run)
    return {**recap, **dict.fromkeys(others, "0")}


def check_no_connection(run: Run) -> None:
    assert "UNREACHABLE" not in run.output, "a host was contacted:\n" + describe(run)
    recap = RECAP.findall(run.output)
    assert recap, "no PLAY RECAP in the output:\n" + describe(run)
    assert all(unreachable == "0" for _, unreachable, _ in recap), describe(run)


def check_inventory_listing(run: Run) -> None:
    listing = json.loads(run.output)
    for group in PRODUCTION_GROUPS:
        assert listing.get(group, {}).get("hosts"), f"group {group} has no host in the listing"
    assert len(listing["scheduler"]["hosts"]) == 1 and len(listing["db"]["hosts"]) == 1
    hostvars = listing["_meta"]["hostvars"][listing["app"]["hosts"][0]]
    assert hostvars["ansible_connection"] == "ssh" and hostvars["ansible_user"]
    # The secrets are references to the vault, and vault.yml.example is not read.
    assert hostvars["app_db_password"] == "{{ vault_app_db_password }}"
    assert not [name for name in hostvars if name.startswith("vault_")]


@pytest.mark.parametrize("case", [case.name for case in CASES], ids=[case.name for case in CASES])
def test_validation(case: str, runs: dict[str, Run]) -> None:
    run = runs[case]
    spec = run.case
    check_no_secret(run)
    if spec.command == "ansible-inventory":
        assert run.returncode == 0, describe(run)
        check_inventory_listing(run)
        return
    if spec.passes:
        assert run.returncode == 0, f"{spec.why}: expected exit 0\n{describe(run)}"
        if spec.playbook == "validate.yml":
            assert validated_hosts(run).keys() == hosts_of(run.inventory), describe(run)
        else:
            recap = {host: failed for host, _, failed in RECAP.findall(run.output)}
            assert set(recap.values()) == {"0"}, describe(run)
    else:
        assert run.returncode != 0, f"{spec.why}: expected a failure\n{describe(run)}"
    for pattern in spec.expect:
        assert re.search(pattern, run.output), f"{spec.why}: output does not match {pattern!r}\n{describe(run)}"
    check_no_connection(run)
    if spec.playbook == "provision.yml" and not spec.passes:
        assert PROVISION_PLAY not in run.output, f"{spec.why}: the provision play started\n{describe(run)}"
    if spec.verbosity >= 3:
        # -vvv prints the configuration file in use: never the repository's.
        assert f"config file = {ROOT / 'ansible.cfg'}" not in run.output, describe(run)


def test_helpers_read_the_inventories() -> None:
    """The checks above are only as good as these: the lab's hosts and groups, and non-empty secrets."""
    assert hosts_of(LAB) == set(LAB_HOSTS)
    assert len(SECRETS) == 6 and all(len(secret) >= 12 for secret in SECRETS)
    assert set(groups_of(LAB)) >= {"lb", "app", "worker", "scheduler", "db", "broker"}


# --------------------------------------------------------------------------- renamed groups (issue 19 item 14)


def play_patterns() -> list[str]:
    """Every `hosts:` pattern of the repository's playbooks, except the ones decided during the run."""
    defaults = yaml.safe_load((ROOT / "roles" / "validate" / "defaults" / "main.yml").read_text())
    runtime = set(defaults["validate_runtime_groups"])
    patterns = []
    for path in sorted(PLAYBOOKS.glob("*.yml")):
        for play in yaml.safe_load(path.read_text()) or []:
            pattern = play.get("hosts")
            if pattern and pattern not in patterns and pattern not in runtime and "{{" not in pattern:
                patterns.append(pattern)
    return patterns


PROBE_PLAY = """
- name: "Probe {pattern}"
  hosts: "{pattern}"
  gather_facts: false
  tasks:
    - name: Name the host
      ansible.builtin.debug:
        msg: "MATCHED {pattern} {{{{ inventory_hostname }}}}"
"""


def probe(workdir: Path, cwd: Path, mutations: tuple[Callable[[Path], None], ...], *args: str) -> tuple[Run, dict]:
    """validate.yml, then one play per pattern of the playbooks: the hosts each pattern matched."""
    workdir.mkdir()
    playbook = workdir / "probe.yml"
    text = f"- name: Validate\n  ansible.builtin.import_playbook: {PLAYBOOKS / 'validate.yml'}\n"
    playbook.write_text(text + "".join(PROBE_PLAY.format(pattern=p) for p in play_patterns()))
    inventory = workdir / "inventory"
    shutil.copytree(LAB, inventory)
    for mutate in mutations:
        mutate(inventory)
    make_unreachable(inventory)
    argv = [str(BIN / "ansible-playbook"), "-i", str(inventory), str(playbook), *args]
    # The probe is not beside playbooks/collections: the collection comes from there all the same.
    env = {**ansible_env(), "ANSIBLE_COLLECTIONS_PATH": str(PLAYBOOKS / "collections")}
    started = time.monotonic()
    result = subprocess.run(
        argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=180
    )
    run = Run(Case("probe", "probe"), inventory, argv, result.returncode, result.stdout, time.monotonic() - started)
    matched: dict[str, set[str]] = {}
    for pattern, host in re.findall(r'"msg": "MATCHED (\S+) (\S+)"', run.output):
        matched.setdefault(pattern, set()).add(host)
    return run, matched


def test_plays_match_the_same_hosts_with_renamed_groups(tmp_path: Path) -> None:
    """Every play pattern of the playbooks matches the same hosts whether the groups have their
    default names or others given with opsbook_group_*; with --limit too."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    for args in ((), ("--limit", "app1,db1,lb1,localhost")):
        label = "-".join(args) or "all"
        plain, expected = probe(tmp_path / f"plain{label}", cwd, (), *args)
        assert plain.returncode == 0, describe(plain)
        assert set(expected) == set(play_patterns()), describe(plain)
        renamed, matched = probe(tmp_path / f"renamed{label}", cwd, (rename_groups,), *args)
        assert renamed.returncode == 0, describe(renamed)
        assert "no hosts matched" not in renamed.output, describe(renamed)
        assert matched == expected, f"{args}: renamed groups matched {matched}, default names {expected}"
    assert expected["app:worker:scheduler"] == {"app1"} and expected["db[0]"] == {"db1"}


def test_a_real_playbook_runs_on_renamed_groups(tmp_path: Path) -> None:
    """celery.yml (hosts: scheduler) with the scheduler group renamed: its play reaches the host
    (unreachable here) instead of matching no host and ending ok."""
    inventory = tmp_path / "inventory"
    shutil.copytree(LAB, inventory)
    rename_groups(inventory)
    make_unreachable(inventory)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    argv = [str(BIN / "ansible-playbook"), "-i", str(inventory), str(PLAYBOOKS / "celery.yml"), "--check"]
    result = subprocess.run(
        argv, cwd=cwd, env=ansible_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=180
    )
    out = result.stdout
    assert "no hosts matched" not in out, out
    play = out[out.index("PLAY [Celery workers and queues]") :]
    assert re.search(r"fatal: \[app1\]: UNREACHABLE", play), out
    assert result.returncode != 0, out


# --------------------------------------------------------------------------- known variables (issue 19 item 13)

PREFIXES = tuple(
    yaml.safe_load((ROOT / "roles" / "validate" / "defaults" / "main.yml").read_text())["validate_checked_prefixes"]
)
PREFIXED = re.compile(r"(?<![&*\w./-])((?:" + "|".join(PREFIXES) + r")[a-z0-9_]*[a-z0-9])(?![\w.])")
# `-e name=value`, `-e 'name=value'`, `--extra-vars name=value` in docs and comments
EXTRA_VAR = re.compile(r"(?:-e|--extra-vars)\s+[\"']?([A-Za-z_][A-Za-z0-9_]*)=")


def known_variables() -> set[str]:
    """What validate accepts: the roles' argument specs and defaults, and validate's playbook list."""
    from ansible_collections.opsbook.webstack.plugins.action.validate_run import declared_variables

    playbook_vars = yaml.safe_load((ROOT / "roles" / "validate" / "vars" / "main.yml").read_text())
    return declared_variables(ROOT / "roles") | set(playbook_vars["__validate_playbook_variables"])


def facts_and_results() -> set[str]:
    """Names the code sets itself (set_fact keys, register names): not inputs."""
    names: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("ansible.builtin.set_fact", "set_fact") and isinstance(value, dict):
                    names.update(value)
                elif key == "register" and isinstance(value, str):
                    names.add(value)
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    for path in [*(ROOT / "roles").rglob("*.yml"), *PLAYBOOKS.glob("*.yml")]:
        walk(yaml.safe_load(path.read_text()))
    return names


def test_every_variable_the_docs_pass_with_e_is_known() -> None:
    """A user copying a command from the docs, the README or a playbook's header is not refused."""
    sources = [
        *(ROOT / "docs").glob("*.md"),
        ROOT / "README.md",
        *PLAYBOOKS.glob("*.yml"),
        *ROOT.glob("inventories/*/README.md"),
    ]
    given: dict[str, set[str]] = {}
    for path in sources:
        text = path.read_text()
        for name in EXTRA_VAR.findall(text):
            # An example of the refusal itself shows the error beside the command.
            if name.startswith(PREFIXES) and f"Unknown variable '{name}'" not in text:
                given.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    assert {"deploy_ref", "restore_confirm"} <= set(given), sorted(given)
    unknown = {name: sorted(where) for name, where in given.items() if name not in known_variables()}
    assert not unknown, f"the docs show -e with names validate refuses: {unknown}"


def test_every_prefixed_variable_the_playbooks_read_is_known() -> None:
    """A playbook reading a variable that is in no argument spec, no defaults and not in
    roles/validate/vars/main.yml would see -e of that name refused: the list must follow the code."""
    read: dict[str, str] = {}
    for path in PLAYBOOKS.glob("*.yml"):
        for line in path.read_text().splitlines():
            # tasks_from names a role's entry point (deploy's rollback_plan), not a variable
            if line.lstrip().startswith(("#", "tags:", "tasks_from:")):
                continue
            for name in PREFIXED.findall(line):
                read.setdefault(name, path.name)
    assert "deploy_serial" in read and "rollback_release" in read, read
    missing = {n: f for n, f in read.items() if n not in known_variables() and n not in facts_and_results()}
    assert not missing, f"read by playbooks but unknown to validate (add to roles/validate/vars/main.yml): {missing}"
    playbook_vars = yaml.safe_load((ROOT / "roles" / "validate" / "vars" / "main.yml").read_text())
    stale = set(playbook_vars["__validate_playbook_variables"]) - set(read)
    assert not stale, f"roles/validate/vars/main.yml lists names no playbook reads: {sorted(stale)}"


def test_unknown_variables_names_the_closest() -> None:
    from ansible_collections.opsbook.webstack.plugins.action.validate_run import describe_unknown, unknown_variables

    found = unknown_variables(
        ["deploy_ref", "deploy_reff", "rollback_restore_database", "app_anything", "deploy_zzzzzzzzzz"],
        ["deploy_ref", "rollback_restore_db", "rollback_confirm"],
        ["deploy_", "rollback_"],
    )
    assert [describe_unknown(item) for item in found] == [
        "Unknown variable 'deploy_reff' given with -e: did you mean 'deploy_ref'?",
        "Unknown variable 'deploy_zzzzzzzzzz' given with -e: no playbook or role of opsbook.webstack reads it.",
        "Unknown variable 'rollback_restore_database' given with -e: did you mean 'rollback_restore_db'?",
    ]
