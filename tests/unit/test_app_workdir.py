"""app_workdir (issue 25, django-ca): a project whose manage.py and settings package sit in a
directory of the release (django-ca's ca/) runs every process and command there.

- validate refuses an absolute path, a `..` or an odd part, naming app_workdir (app_problems_by_host,
  the filter validate runs for every host);
- the provision role's unit templates, rendered by ansible-playbook with the role's defaults and vars,
  put WorkingDirectory in <pointer>/<app_workdir> for Gunicorn, Celery workers, beat and RQ, and in
  the pointer itself without it (the slots' pointers too);
- the deploy role's Django migration steps (record, plan, reverse) run manage.py in the release's
  app_workdir with the release's virtualenv. The framework commands themselves (manage.yml) are run
  for real with app_workdir in tests/unit/test_app_commands_systemd.py.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import yaml
from ansible_collections.opsbook.webstack.plugins.filter.app_commands import app_workdir
from ansible_collections.opsbook.webstack.plugins.filter.app_problems import app_problems_by_host

import helpers

ROOT = Path(__file__).resolve().parents[2]
APP = {"app_name": "ca", "app_user": "ca", "app_root": "/srv/ca", "app_http_port": 8000, "app_workers": []}
WORKERS = [
    {"name": "worker", "kind": "celery", "queues": ["celery"], "concurrency": 1},
    {"name": "beat", "kind": "celery-beat"},
]


def problems(**values) -> list[str]:
    return app_problems_by_host({"h1": {"values": {**APP, **values}}})["h1"]


@pytest.mark.parametrize("value", ["", "ca", "ca/", "src/project", "my_app.d/web-1"])
def test_a_relative_directory_inside_the_release_passes(value):
    assert problems(app_workdir=value) == []


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("/srv/ca/current/ca", "it is absolute"),
        ("..", "it leaves the release (..)"),
        ("ca/../../etc", "it leaves the release (..)"),
        ("ca//settings", "no part empty"),
        ("./ca", "without a leading dot"),
        ("my ca", "letters, digits"),
        (7, "letters, digits"),
    ],
)
def test_a_path_outside_the_release_or_an_odd_one_is_refused_naming_app_workdir(value, why):
    (problem,) = problems(app_workdir=value)
    assert problem.startswith(f"app_workdir ({value!r}) must be a directory inside the release"), problem
    assert why in problem, problem


def test_unset_is_not_checked_and_the_filter_gives_the_release_or_the_directory_in_it():
    assert problems() == []
    assert app_workdir("/srv/ca/current", "") == "/srv/ca/current"
    assert app_workdir("/srv/ca/current", None) == "/srv/ca/current"
    assert app_workdir("/srv/ca/blue", "ca/") == "/srv/ca/blue/ca"


# The units rendered as provision's app.yml renders them (lookup('template'), the unit as item), and
# the deploy's manage.py argv of its migration steps.
RENDER = (
    "{%- set out = {} -%}{%- for unit in __provision_units -%}"
    "{%- set _ = out.update({unit.unit: lookup('ansible.builtin.template', "
    f"'{ROOT}/roles/provision/templates/' ~ __provision_unit_templates[unit.kind],"
    " template_vars={'item': unit})}) -%}"
    "{%- endfor -%}{{ {'units': out, 'migrate': __deploy_migrations_manage} | to_json }}"
)


def render(tmp_path: Path, **host_vars) -> dict:
    """{unit: text} of every unit the provision role writes on app1, and the deploy's migration argv."""
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    groups = {"app": ["app1"], "worker": ["app1"], "scheduler": ["app1"], "db": ["app1"], "lb": ["app1"]}
    inventory = {
        "all": {
            "vars": {
                **{f"opsbook_group_{g}": g for g in (*groups, "broker")},
                "app_name": "ca", "app_user": "ca", "app_group": "ca", "app_root": "/srv/ca",
                "app_wsgi": "ca.wsgi:application", "app_celery_app": "ca", "app_http_port": 8000,
                "app_gunicorn_workers": 2, "app_workers": WORKERS, **host_vars,
            },
            "children": {g: {"hosts": {h: local for h in hosts}} for g, hosts in groups.items()},
        }
    }  # fmt: skip
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))
    roles = ROOT / "roles"
    playbook = [
        {
            "name": "Render the units and the migration command",
            "hosts": "app1",
            "gather_facts": False,
            "vars_files": [
                str(roles / "provision" / "defaults" / "main.yml"),
                str(roles / "provision" / "vars" / "main.yml"),
                str(roles / "deploy" / "vars" / "main.yml"),
            ],
            "vars": {"__mig_dir": "/srv/ca/releases/r1"},
            "tasks": [{"name": "Show", "ansible.builtin.debug": {"msg": "RENDERED=" + RENDER}}],
        }
    ]
    out = helpers.playbook_on_localhost(tmp_path, yaml.safe_dump(playbook), {}, inventory=tmp_path / "hosts.yml")
    found = re.search(r'"msg": "RENDERED=(.*)"\n', out.stdout)
    assert out.returncode == 0 and found, out.stdout[-4000:] + out.stderr[-2000:]
    return json.loads(json.loads(f'"{found[1]}"'))


def working_directories(units: dict) -> dict:
    return {unit: re.search(r"^WorkingDirectory=(.*)$", text, re.MULTILINE)[1] for unit, text in units.items()}


def test_without_app_workdir_every_unit_runs_in_its_release_pointer(tmp_path):
    rendered = render(tmp_path)
    assert working_directories({u: t for u, t in rendered["units"].items() if u.endswith(".service")}) == {
        "ca.service": "/srv/ca/current",
        "ca-worker.service": "/srv/ca/current",
        "ca-beat.service": "/srv/ca/current",
    }
    assert "--property=WorkingDirectory=/srv/ca/releases/r1" in rendered["migrate"]


def test_with_app_workdir_gunicorn_celery_and_beat_run_in_it_and_the_venv_stays_at_the_top(tmp_path):
    rendered = render(tmp_path, app_workdir="ca")
    units = {u: t for u, t in rendered["units"].items() if u.endswith(".service")}
    assert working_directories(units) == {
        "ca.service": "/srv/ca/current/ca",
        "ca-worker.service": "/srv/ca/current/ca",
        "ca-beat.service": "/srv/ca/current/ca",
    }
    assert "ExecStart=/srv/ca/current/venv/bin/gunicorn" in units["ca.service"]
    assert "ExecStart=/srv/ca/current/venv/bin/celery -A ca worker" in units["ca-worker.service"]
    # The Django migration steps: manage.py in <release>/ca, the release's Python.
    migrate = rendered["migrate"]
    assert "--property=WorkingDirectory=/srv/ca/releases/r1/ca" in migrate
    assert migrate[-2:] == ["/srv/ca/releases/r1/venv/bin/python", "manage.py"]


def test_with_slots_and_rq_each_unit_runs_in_its_pointers_app_workdir(tmp_path):
    slots = {"blue": {"group": "app", "port": 8121}, "green": {"group": "app", "port": 8122}}
    rendered = render(tmp_path, app_workdir="src/project", app_slots=slots)
    found = working_directories({u: t for u, t in rendered["units"].items() if u.endswith(".service")})
    assert found["ca-blue.service"] == "/srv/ca/blue/src/project"
    assert found["ca-green-worker.service"] == "/srv/ca/green/src/project"
    (tmp_path / "rq").mkdir()
    rq = render(tmp_path / "rq", app_workdir="ca", app_workers=[{"name": "rq", "kind": "rq", "queues": ["default"]}])
    assert working_directories({"rq": rq["units"]["ca-rq.service"]}) == {"rq": "/srv/ca/current/ca"}
