"""An app that uses no Redis (issue 25's last item): `app_redis: false`.

ihatemoney (Flask, no task queue) and django-ca (Celery on RabbitMQ, no result backend) set
`app_redis: false` and no `app_redis_*`. Here, by ansible-playbook on this machine:

- validate.yml passes on both examples as shipped, and refuses before any host is contacted, each
  problem naming the variable: the Redis variables missing while app_redis is true (the default,
  with a hint at app_redis: false), RQ workers, Celery workers without app_broker, and a redis://
  result backend while app_redis is false (its password never printed);
- the real role vars and templates rendered for such an app: the environment file has no REDIS_URL,
  RQ_REDIS_URL or (without app_broker) CELERY_BROKER_URL; the deploy's preflight reaches no broker;
  provision checks and installs no redis-server on the broker group (RabbitMQ's still); health
  expects no redis-server.service; maintenance.yml skips its Redis insight; the configuration
  backup saves no /etc/redis. The same renders with app_redis unset keep today's Redis parts.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_validate import ROOT, Case, Run, check_no_connection, describe, edit_vars, run_case

import helpers

# One xdist worker takes the whole module, so the module's validate runs happen once, in parallel.
pytestmark = pytest.mark.xdist_group("app_without_redis")

EXAMPLES = ROOT / "inventories" / "examples"
SECRET = "res-ult/S3cret@:%"
REDIS_NAMES = ("app_redis_host", "app_redis_port", "app_redis_db", "app_redis_password")
REDIS_HINT = "an app that uses no Redis sets app_redis: false instead"


def example(name: str, case: str, why: str, *mutations, passes: bool = False, expect: tuple[str, ...] = ()) -> Case:
    vault = EXAMPLES / name / "group_vars" / "all" / "vault.yml.example"
    return Case(
        case, why, source=EXAMPLES / name, args=("-e", f"@{vault}"), mutations=mutations, passes=passes, expect=expect
    )


def setting(**values: Any):
    return edit_vars("main.yml", lambda data: data.update(values))


def without(*names: str):
    return edit_vars("main.yml", lambda data: [data.pop(name, None) for name in names])


CASES = [
    example("ihatemoney", "ihatemoney", "as shipped: app_redis false, no app_redis_*", passes=True),
    example("django-ca", "djangoca", "as shipped: Celery on RabbitMQ, app_redis false, no app_redis_*", passes=True),
    example(
        "ihatemoney",
        "ihatemoney_redis_default",
        "app_redis removed (true by default) without app_redis_*: every Redis variable named at once, with the hint",
        without("app_redis"),
        expect=(
            r"Missing variable\(s\) app_redis_host, app_redis_port, app_redis_db, app_redis_password \(",
            REDIS_HINT,
        ),
    ),
    example(
        "ihatemoney",
        "ihatemoney_redis_half",
        "app_redis true with app_redis_host only: the three others named",
        setting(app_redis=True, app_redis_host="db.money.example.org"),
        expect=(r"Missing variable\(s\) app_redis_port, app_redis_db, app_redis_password \(",),
    ),
    example(
        "ihatemoney",
        "ihatemoney_rq",
        "an RQ worker while app_redis is false",
        setting(app_workers=[{"name": "jobs", "kind": "rq", "queues": ["default"]}]),
        expect=(
            r"app_workers declares jobs \(kind rq\), but app_redis is false \(the app uses no Redis\):"
            r" RQ runs on Redis",
        ),
    ),
    example(
        "django-ca",
        "djangoca_no_broker",
        "Celery workers while app_redis is false and app_broker unset (the broker would be Redis)",
        without("app_broker"),
        expect=(r"app_workers declares worker, beat of kind celery or celery-beat, whose broker is the Redis of",),
    ),
    example(
        "django-ca",
        "djangoca_redis_broker",
        "an app_broker of kind redis while app_redis is false",
        setting(app_broker={"kind": "redis", "host": "db.ca.example.org", "password": SECRET}),
        expect=(r"app_broker is of kind redis, but app_redis is false",),
    ),
    example(
        "django-ca",
        "djangoca_redis_results",
        "a redis:// result backend while app_redis is false: named, its password not printed",
        setting(app_result_backend=f"redis://:{SECRET}@db.ca.example.org:6379/1"),
        expect=(r"app_result_backend is a Redis URL, but app_redis is false",),
    ),
]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    cwd = tmp_path_factory.mktemp("not-the-repo")
    with concurrent.futures.ThreadPoolExecutor(max_workers=(os.cpu_count() or 1) + 1) as pool:
        futures = {c.name: pool.submit(run_case, c, tmp_path_factory.mktemp(c.name), cwd) for c in CASES}
        return {name: future.result() for name, future in futures.items()}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_validate(runs: dict[str, Run], case: Case) -> None:
    run = runs[case.name]
    check_no_connection(run)
    assert (run.returncode == 0) == case.passes, describe(run)
    text = " ".join(run.output.split())
    for pattern in case.expect:
        assert re.search(pattern, text), f"{pattern!r} not in the output:\n" + describe(run)
    assert SECRET not in run.output


def test_the_examples_set_no_redis_variable() -> None:
    for name in ("ihatemoney", "django-ca"):
        text = "".join(p.read_text() for p in (EXAMPLES / name).rglob("*") if p.is_file())
        assert "app_redis: false" in text and not any(n in text for n in REDIS_NAMES), name
        assert "vault_app_redis_password" not in text, name


# ------------------------------------------------------------------ the roles, rendered


IHATEMONEY = {"app_name": "ihatemoney", "app_redis": False, "app_workers": []}
DJANGOCA = {
    "app_name": "djangoca",
    "app_redis": False,
    "app_workers": [{"name": "worker", "kind": "celery", "queues": ["celery"], "concurrency": 2}],
    "app_broker": {"kind": "rabbitmq", "host": "db1", "vhost": "djangoca", "user": "djangoca", "password": SECRET},
}
# Today's default: app_redis unset, app_redis_* set (the sample app, the seed examples).
JOURNAL = {
    "app_name": "journal",
    "app_workers": [{"name": "rq", "kind": "rq", "queues": ["default"]}],
    "app_redis_host": "db1",
    "app_redis_port": 6379,
    "app_redis_db": 0,
    "app_redis_password": SECRET,
}
GROUPS = {"lb": ["lb1"], "app": ["app1"], "worker": ["app1"], "scheduler": ["app1"], "db": ["db1"], "broker": ["db1"]}


def task(path: str, name: str) -> dict:
    """The task (or play, for a playbook) of that name in a YAML file of the repository."""
    items = yaml.safe_load((ROOT / path).read_text())
    (found,) = [item for item in items if item.get("name") == name]
    return found


def render(
    tmp_path: Path, host: str, app: dict, role_files: list[str], show: dict[str, str], extra: dict | None = None
) -> dict:
    """ansible-playbook on an inventory of local hosts: each expression of `show`, rendered on `host` with the
    app's variables and the roles' defaults and vars files (extra: as -e, above the roles' defaults), read back as
    JSON."""
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    common = {
        "app_root": f"/srv/{app['app_name']}",
        "app_user": app["app_name"],
        "app_group": app["app_name"],
        "app_http_port": 8000,
        "app_health_path": "/health/",
        "app_secret_key": SECRET,
        "app_db_host": "db1",
        "app_db_port": 5432,
        "app_db_name": app["app_name"],
        "app_db_user": app["app_name"],
        "app_db_password": SECRET,
        "app_env": {"PLAIN": "x"},
    }
    inventory = {
        "all": {
            "vars": {**{f"opsbook_group_{g}": g for g in GROUPS}, **common, **app},
            "children": {g: {"hosts": {h: local for h in hosts}} for g, hosts in GROUPS.items()},
        }
    }
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))
    names = {f"__show_{key}": expression for key, expression in show.items()}
    play = [
        {
            "name": "Render",
            "hosts": host,
            "gather_facts": False,
            "vars_files": [str(ROOT / "roles" / f) for f in role_files],
            "vars": names,
            "tasks": [
                {
                    "name": "Show",
                    "ansible.builtin.copy": {
                        "content": "{{ {" + ", ".join(f"'{k}': __show_{k}" for k in show) + "} | to_json }}",
                        "dest": str(tmp_path / "out.json"),
                        "mode": "0600",
                    },
                }
            ],
        }
    ]
    out = helpers.playbook_on_localhost(tmp_path, yaml.safe_dump(play), extra or {}, inventory=tmp_path / "hosts.yml")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert SECRET not in out.stdout + out.stderr
    return json.loads((tmp_path / "out.json").read_text())


DEPLOY = ["deploy/defaults/main.yml", "deploy/vars/main.yml"]
ENV = f"{{{{ lookup('ansible.builtin.template', '{ROOT}/roles/deploy/templates/env.j2') }}}}"
REACH = task("roles/deploy/tasks/state.yml", "DEPLOY | Read what the release pointer serves")[
    "opsbook.webstack.deploy_host_state"
]["reach"]


def env_names(env: str) -> set[str]:
    return {line.split("=", 1)[0] for line in env.splitlines() if "=" in line and not line.startswith("#")}


def deploy(tmp_path: Path, app: dict) -> dict:
    return render(tmp_path, "app1", app, DEPLOY, {"env": ENV, "reach": REACH.replace("__prepare", "true")})


def test_the_env_file_of_an_app_without_redis_has_no_redis_and_no_broker(tmp_path: Path) -> None:
    out = deploy(tmp_path, IHATEMONEY)
    names = env_names(out["env"])
    assert {"DATABASE_PASSWORD", "DJANGO_SECRET_KEY", "PLAIN"} <= names, out["env"]
    assert not names & {"REDIS_URL", "RQ_REDIS_URL", "CELERY_BROKER_URL"}, out["env"]
    assert "redis" not in out["env"].lower()
    # The deploy's preflight reaches the database only: there is no broker to wait for.
    assert [r["name"] for r in out["reach"]] == ["database"]


def test_the_env_file_of_celery_on_rabbitmq_without_redis(tmp_path: Path) -> None:
    out = deploy(tmp_path, DJANGOCA)
    names = env_names(out["env"])
    assert "CELERY_BROKER_URL" in names and not names & {"REDIS_URL", "RQ_REDIS_URL"}, names
    assert 'CELERY_BROKER_URL="amqp://djangoca:' in out["env"]
    assert [(r["name"], r["host"], r["port"]) for r in out["reach"]] == [
        ("database", "db1", 5432),
        ("broker", "db1", 5672),
    ]


def test_the_env_file_keeps_redis_by_default(tmp_path: Path) -> None:
    out = deploy(tmp_path, JOURNAL)
    names = env_names(out["env"])
    assert {"REDIS_URL", "RQ_REDIS_URL", "CELERY_BROKER_URL"} <= names, names
    assert 'CELERY_BROKER_URL="redis://:' in out["env"]
    assert [(r["name"], r["port"]) for r in out["reach"]] == [("database", 5432), ("broker", 6379)]


PROVISION = ["provision/defaults/main.yml", "provision/vars/main.yml"]
PACKAGES = task(
    "roles/provision/tasks/common.yml", "PROVISION | See whether every package this host needs is installed"
)["vars"]["__packages"]
REDIS_TASKS = task(
    "roles/provision/tasks/main.yml", "PROVISION | Redis on the broker group, when the app uses Redis (app_redis)"
)
RABBITMQ_TASKS = task(
    "roles/provision/tasks/main.yml",
    "PROVISION | RabbitMQ on the broker group, when it is the app's Celery broker (app_broker)",
)


def provision(tmp_path: Path, app: dict) -> dict:
    return render(
        tmp_path,
        "db1",
        app,
        PROVISION,
        {
            "packages": PACKAGES,
            "redis": "{{ " + REDIS_TASKS["when"] + " }}",
            "rabbitmq": "{{ " + RABBITMQ_TASKS["when"] + " }}",
        },
    )


@pytest.mark.parametrize(("app", "rabbitmq"), [(IHATEMONEY, False), (DJANGOCA, True)], ids=["ihatemoney", "djangoca"])
def test_provision_installs_no_redis_for_an_app_without_redis(tmp_path: Path, app: dict, rabbitmq: bool) -> None:
    out = provision(tmp_path, app)
    assert "redis-server" not in out["packages"] and out["redis"] is False, out
    assert ("rabbitmq-server" in out["packages"]) is rabbitmq and out["rabbitmq"] is rabbitmq, out
    assert "postgresql-15" in out["packages"]


def test_provision_installs_redis_by_default(tmp_path: Path) -> None:
    out = provision(tmp_path, JOURNAL)
    assert "redis-server" in out["packages"] and out["redis"] is True and out["rabbitmq"] is False, out


MAINTENANCE = ["maintenance/defaults/main.yml", "maintenance/vars/main.yml"]
CACHE_PLAY = task("playbooks/maintenance.yml", "Cache insight")["tasks"][0]["when"]


@pytest.mark.parametrize(
    ("app", "units", "cache"),
    [
        (IHATEMONEY, [], False),
        (DJANGOCA, ["rabbitmq-server.service"], False),
        (JOURNAL, ["redis-server.service"], True),
    ],
    ids=["ihatemoney", "djangoca", "default"],
)
def test_health_and_maintenance_skip_redis_for_an_app_without_it(tmp_path: Path, app, units, cache) -> None:
    out = render(
        tmp_path,
        "db1",
        app,
        MAINTENANCE,
        {
            "units": "{{ __maintenance_units }}",
            "cache": "{{ " + CACHE_PLAY + " }}",
            "queues": "{{ maintenance_health_queues }}",
        },
    )
    broker_units = [u for u in out["units"] if u in ("redis-server.service", "rabbitmq-server.service")]
    assert broker_units == units, out
    assert out["cache"] is cache, out


BACKUP = ["backup/defaults/main.yml", "backup/vars/main.yml"]


@pytest.mark.parametrize(
    ("app", "expected"),
    [(IHATEMONEY, []), (DJANGOCA, ["/etc/rabbitmq"]), (JOURNAL, ["/etc/redis"])],
    ids=["ihatemoney", "djangoca", "default"],
)
def test_the_configuration_backup_saves_no_redis_conf_without_redis(tmp_path: Path, app, expected) -> None:
    out = render(tmp_path, "db1", app, BACKUP, {"paths": "{{ __backup_config_paths }}"})
    assert [p for p in out["paths"] if p.startswith(("/etc/redis", "/etc/rabbitmq"))] == expected, out
    assert "/etc/postgresql" in out["paths"]


CELERY = ["celery/defaults/main.yml", "celery/vars/main.yml"]
HAS_BROKER = task("roles/celery/tasks/input.yml", "CELERY | Check that the app has the broker the backend needs")[
    "ansible.builtin.assert"
]["that"][0]


@pytest.mark.parametrize(
    ("app", "backend", "passes"),
    [
        (IHATEMONEY, "celery", False),
        (IHATEMONEY, "rq", False),
        (DJANGOCA, "celery", True),
        (DJANGOCA, "rq", False),
        (JOURNAL, "celery", True),
        (JOURNAL, "rq", True),
    ],
    ids=["ihatemoney-celery", "ihatemoney-rq", "djangoca-celery", "djangoca-rq", "default-celery", "default-rq"],
)
def test_celery_yml_refuses_a_backend_the_app_has_no_broker_for(tmp_path: Path, app, backend, passes) -> None:
    out = render(tmp_path, "app1", app, CELERY, {"ok": "{{ " + HAS_BROKER + " }}"}, {"celery_backend": backend})
    assert out["ok"] is passes
