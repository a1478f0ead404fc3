"""Framework commands (issue 25, app_commands): roles/deploy/vars/main.yml's split of app_commands
(opsbook.webstack.app_commands) rendered by ansible-playbook itself: unset, the Django steps the
deploy ran before (migrate once before the switch, collectstatic in the build); a Flask app's
`flask db upgrade`; entries per host and after the switch; the argv each runs (manage.yml); malformed
entries refused naming the variable, the entry and the field; and rollback.yml's migration reversal
(migrations_plan.yml) refused for an app whose commands hold no Django migrate, before anything runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml
from test_deploy_build_once import debug_messages

import helpers

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

PLAYBOOK = """
- name: The deploy role's framework commands
  hosts: all
  gather_facts: false
  tasks:
    - name: Load the deploy role's variables
      ansible.builtin.include_vars: {vars}
    - name: Show the split
      ansible.builtin.debug:
        msg: >-
          {{{{ {{'build': __deploy_commands_build, 'before': __deploy_commands_before, 'after': __deploy_commands_after,
               'django': __deploy_commands_django_migrate | bool, 'in_build': __deploy_collectstatic_in_build | bool,
               'argv': __deploy_commands | map('opsbook.webstack.app_command_argv', '/srv/app/releases/r1') | list}}
             | to_json }}}}
"""

FLASK = [{"name": "migrate", "argv": ["flask", "db", "upgrade"], "run": "once", "when": "before_switch"}]


def split(tmp_path: Path, **host_vars) -> dict:
    inventory = {
        "all": {
            "hosts": {"h1": {"__deploy_platform": "p", "app_root": "/srv/app", "app_env": {}, **host_vars}},
            "vars": {
                "ansible_connection": "local",
                "ansible_python_interpreter": sys.executable,
                "deploy_build": "once",
                "__deploy_needed_hosts": ["h1"],
            },
        }
    }
    (msg,) = debug_messages(tmp_path, inventory, PLAYBOOK)
    return json.loads(msg)


def names(items: list[dict]) -> list[str]:
    return [item["name"] for item in items]


def test_unset_is_the_django_steps_as_before(tmp_path):
    seen = split(tmp_path)
    assert names(seen["before"]) == ["migrate"] and seen["before"][0]["run"] == "once"
    assert names(seen["build"]) == ["collectstatic"] and seen["in_build"] is True
    assert seen["after"] == [] and seen["django"] is True
    assert seen["argv"] == [
        ["/srv/app/releases/r1/venv/bin/python", "manage.py", "migrate", "--noinput"],
        ["/srv/app/releases/r1/venv/bin/python", "manage.py", "collectstatic", "--noinput"],
    ]


def test_deploy_migrate_and_deploy_collectstatic_false_leave_their_step_out(tmp_path):
    seen = split(tmp_path, deploy_migrate=False, deploy_collectstatic=False)
    assert seen["before"] == [] and seen["build"] == [] and seen["django"] is False and seen["in_build"] is False


def test_a_flask_app_migrates_once_with_its_own_command_and_records_no_django_state(tmp_path):
    seen = split(tmp_path, app_commands=FLASK)
    assert names(seen["before"]) == ["migrate"] and seen["build"] == [] and seen["in_build"] is False
    assert seen["django"] is False
    assert seen["argv"] == [["/srv/app/releases/r1/venv/bin/flask", "db", "upgrade"]]


def test_entries_per_host_after_the_switch_and_absolute_programs(tmp_path):
    commands = FLASK + [
        {"name": "compilemessages", "argv": ["python", "manage.py", "compilemessages"], "run": "per_host"},
        {
            "name": "warm",
            "argv": ["/usr/bin/curl", "-fsS", "http://127.0.0.1/"],
            "when": "after_switch",
            "environment": {"LANG": "C.UTF-8"},
            "timeout": 30,
        },
    ]
    seen = split(tmp_path, app_commands=commands)
    assert [(c["name"], c["run"]) for c in seen["before"]] == [("migrate", "once"), ("compilemessages", "per_host")]
    assert seen["after"] == [
        {
            "name": "warm",
            "argv": ["/usr/bin/curl", "-fsS", "http://127.0.0.1/"],
            "run": "once",
            "when": "after_switch",
            "environment": {"LANG": "C.UTF-8"},
            "timeout": 30,
        }
    ]
    assert seen["argv"][2][0] == "/usr/bin/curl"


MALFORMED = [
    (
        [{"name": "migrate", "argv": "flask db upgrade"}],
        "app_commands entry 0 (migrate): field argv must be a list of strings (no shell), got the string",
    ),
    (
        FLASK + [{"name": "static", "argv": ["python", "x"], "run": "twice"}],
        "app_commands entry 1 (static): field run must be one of once, per_host, build, got 'twice'",
    ),
    (
        [{"name": "m", "argv": ["flask"], "when": "later"}],
        "app_commands entry 0 (m): field when must be one of before_switch, after_switch, got 'later'",
    ),
    ([{"argv": ["flask"]}], "app_commands entry 0: field name must be a word"),
    ([{"name": "m", "argv": ["flask"], "timeout": "5m"}], "app_commands entry 0 (m): field timeout must be a whole"),
    ([{"name": "m", "argv": ["flask"], "shell": True}], "app_commands entry 0 (m): unknown field(s) shell"),
    ([{"name": "m", "argv": ["bin/flask"]}], "app_commands entry 0 (m): field argv[0] 'bin/flask' must be"),
    (
        [{"name": "m", "argv": ["flask"], "run": "build", "when": "after_switch"}],
        "app_commands entry 0 (m): run build happens in the build",
    ),
    (FLASK + FLASK, "app_commands entry 1 (migrate): field name repeats an earlier entry's"),
    ({"migrate": "flask db upgrade"}, "app_commands: expected a list of commands"),
    ([{"name": "m", "argv": ["flask"], "environment": {"1X": "y"}}], "app_commands entry 0 (m): field environment"),
]

VALIDATE = """
- name: validate's check of app_commands, and the deploy's filter
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Each value's problems (roles/validate/tasks/main.yml's filter)
      ansible.builtin.debug:
        msg: "{{ item | opsbook.webstack.app_commands_problems | to_json }}"
      loop: "{{ values }}"
    - name: The well-formed ones have none
      ansible.builtin.debug:
        msg: "{{ [none, [], FLASK] | map('opsbook.webstack.app_commands_problems') | flatten | to_json }}"
      vars:
        FLASK: "{{ values_ok }}"
    - name: The deploy's filter fails on the first malformed value
      ansible.builtin.debug:
        msg: "{{ values[0] | opsbook.webstack.app_commands }}"
"""


def test_a_malformed_entry_is_refused_naming_the_variable_the_entry_and_the_field(tmp_path):
    extra = {"values": [value for value, _ in MALFORMED], "values_ok": FLASK}
    out = helpers.playbook_on_localhost(tmp_path, VALIDATE, extra, callback="json")
    assert out.returncode != 0  # the last task
    report = out.stdout[out.stdout.index("\n{\n") :]  # after the timing callback's lines
    tasks = json.JSONDecoder().raw_decode(report.strip())[0]["plays"][0]["tasks"]  # the recap's timing after it
    seen = [json.loads(r["msg"]) for r in tasks[0]["hosts"]["localhost"]["results"]]
    for (_value, message), problems in zip(MALFORMED, seen, strict=True):
        assert len(problems) == 1 and problems[0].startswith(message), (message, problems)
    assert json.loads(tasks[1]["hosts"]["localhost"]["msg"]) == []
    assert MALFORMED[0][1] in tasks[2]["hosts"]["localhost"]["msg"]


REVERSE = """
- name: rollback.yml's migration reversal plan
  hosts: all
  gather_facts: false
  tasks:
    - name: Load the deploy role's variables
      ansible.builtin.include_vars: {vars}
    - name: Plan
      ansible.builtin.include_tasks: {tasks}
"""


def test_migration_reversal_is_refused_for_commands_without_django_migrate(tmp_path):
    (tmp_path / "root" / "releases" / "r2").mkdir(parents=True)
    inventory = {
        "all": {
            "hosts": {"h1": {}},
            "vars": {
                "ansible_connection": "local",
                "ansible_python_interpreter": sys.executable,
                "opsbook_group_app": "all",
                "app_root": str(tmp_path / "root"),
                "app_db_name": "journal",
                "app_commands": FLASK,
                "__deploy_needed_hosts": ["h1"],
                "deploy_previous_release": "r2",
                "__deploy_rollback_target": "r1",
                "deploy_migrations_rollback": "reverse",
                "deploy_migrations_confirm": "journal",
                "deploy_migrations_record": ".opsbook-migrations.json",
            },
        }
    }
    (tmp_path / "inventory.json").write_text(json.dumps(inventory))
    (tmp_path / "play.yml").write_text(
        REVERSE.format(vars=ROOT / "roles/deploy/vars/main.yml", tasks=ROOT / "roles/deploy/tasks/migrations_plan.yml")
    )
    out = subprocess.run(
        [BIN / "ansible-playbook", "-i", tmp_path / "inventory.json", tmp_path / "play.yml"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env={**os.environ, "ANSIBLE_STDOUT_CALLBACK": "default", "ANSIBLE_NOCOLOR": "1"},
    )
    text = " ".join((out.stdout + out.stderr).split())
    assert out.returncode != 0, text
    assert "rollback_migrations=reverse: app_commands runs no Django `manage.py migrate` (flask db upgrade)" in text
    assert "Nothing was changed." in text
    # Refused before it looked at the release (no stat of manage.py).
    assert "Look for manage.py" not in text


def test_the_deploy_roles_argument_specs_declare_app_commands():
    spec = yaml.safe_load((ROOT / "roles/deploy/meta/argument_specs.yml").read_text())["argument_specs"]
    options = {name for entry in spec.values() for name in (entry.get("options") or {})}
    assert {"app_commands", "app_health_expect", "app_version_source"} <= options
