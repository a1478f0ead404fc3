"""The inventory_groups filter: the one place the roles read opsbook_group_<name> (issue 22).

It replaced the mapping `{'app': opsbook_group_app | default('app'), ...}` written out in six roles'
vars/main.yml. The playbook test below renders both, the old Jinja and the filter on `vars`, in one
play, with groups renamed in the inventory, in the play's vars and with -e, and one left unset.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.opsbook.webstack.plugins.filter.inventory_groups import CANONICAL_GROUPS, inventory_groups

import helpers

ROOT = Path(__file__).resolve().parents[4]


def test_unset_names_fall_back_to_the_canonical_name():
    assert inventory_groups({}) == {name: name for name in CANONICAL_GROUPS}


def test_a_renamed_group_takes_its_variable_and_only_that_one():
    names = inventory_groups({"opsbook_group_app": "webservers", "opsbook_group_db": "postgres", "app_name": "x"})
    assert names["app"] == "webservers"
    assert names["db"] == "postgres"
    assert {k: v for k, v in names.items() if k not in ("app", "db")} == {
        name: name for name in CANONICAL_GROUPS if name not in ("app", "db")
    }


def test_a_defined_empty_name_is_kept_as_default_would():
    # `opsbook_group_app | default('app')` keeps '' (default() replaces only an undefined value).
    assert inventory_groups({"opsbook_group_app": ""})["app"] == ""


def test_anything_but_a_mapping_is_refused_naming_what_it_wants():
    with pytest.raises(AnsibleFilterError, match=r"inventory_groups: expects the variables in scope \(vars\), got str"):
        inventory_groups("app")


def test_the_canonical_groups_are_the_ones_validate_checks():
    validate_vars = yaml.safe_load((ROOT / "roles" / "validate" / "vars" / "main.yml").read_text())
    assert list(CANONICAL_GROUPS) == validate_vars["__validate_canonical_groups"]


# The mapping as the roles wrote it before the filter, for every canonical group.
OLD = "{" + ", ".join(f"'{n}': opsbook_group_{n} | default('{n}')" for n in CANONICAL_GROUPS) + "}"


def test_the_filter_on_vars_gives_what_the_roles_jinja_gave(tmp_path: Path) -> None:
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    worker = {"name": "worker", "kind": "celery", "queues": ["celery"]}
    # opsbook_group_app is a template, rendered when read like any variable.
    variables = {"app_name": "shop", "app_workers": [worker], "opsbook_group_app": "{{ 'web' ~ 'servers' }}"}
    children = {"webservers": {"hosts": {"h1": local}}, "queue": {"hosts": {"h1": local}}}
    inventory = {"all": {"vars": variables, "children": children}}
    play = [
        {
            "hosts": "h1",
            "gather_facts": False,
            "vars": {"opsbook_group_worker": "queue"},
            "vars_files": [str(ROOT / "roles" / "provision" / "vars" / "main.yml")],
            "tasks": [
                {
                    "name": "Show",
                    "ansible.builtin.debug": {
                        "msg": "NAMES={{ {'old': " + OLD + ", 'new': vars | opsbook.webstack.inventory_groups,"
                        " 'units': __provision_units | map(attribute='unit') | list} | to_json }}"
                    },
                }
            ],
        }
    ]
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))
    result = helpers.playbook_on_localhost(
        tmp_path, yaml.safe_dump(play), {"opsbook_group_scheduler": "cron"}, inventory=tmp_path / "hosts.yml"
    )
    found = re.search(r'"msg": "NAMES=(.*)"\n', result.stdout)
    assert result.returncode == 0 and found, (result.stdout + result.stderr)[-4000:]
    shown = json.loads(found[1].encode().decode("unicode_escape"))
    assert shown["new"] == shown["old"]
    assert shown["new"] == {
        "lb": "lb", "app": "webservers", "worker": "queue", "scheduler": "cron", "db": "db", "broker": "broker",
        "backup_store": "backup_store",
    }  # fmt: skip
    # provision's units through the filter: the web units of the renamed app group, the worker of the renamed one.
    assert shown["units"] == ["shop.socket", "shop.service", "shop-worker.service"]
