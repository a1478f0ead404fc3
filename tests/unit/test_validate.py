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
    Case(
        "worker_kind_cron",
        "an app_workers item of kind cron",
        mutations=(edit_vars("app.yml", lambda d: d["app_workers"].append({"name": "nightly", "kind": "cron"})),),
        expect=(r"app_workers item nightly \(kind cron\) is invalid", r"kind celery or celery-beat"),
    ),
    Case(
        "two_beats",
        "two celery-beat workers",
        mutations=(edit_vars("app.yml", lambda d: d["app_workers"].append({"name": "beat2", "kind": "celery-beat"})),),
        expect=(r"app_workers declares \S+, \S+ as celery-beat: beat must run exactly once",),
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
        expect=(r"Missing variable\(s\) app_db_password, app_redis_password, app_secret_key \(",),
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
        recap = {host: failed for host, _, failed in RECAP.findall(run.output)}
        assert recap.keys() == hosts_of(run.inventory), describe(run)
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
