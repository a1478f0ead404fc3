"""The validation filters (issue 22 item 5): every refusal the Jinja checks made, in the same words,
each naming the variable and what it accepts. End to end (the validate role and the backup role
refusing before any change) in tests/unit/test_validate.py and tests/lab/test_backup*.py."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.opsbook.webstack.plugins.filter.age_recipient_problems import age_recipient_problems
from ansible_collections.opsbook.webstack.plugins.filter.app_problems import app_problems, app_required_unset
from ansible_collections.opsbook.webstack.plugins.filter.inventory_problems import inventory_problems
from ansible_collections.opsbook.webstack.plugins.filter.retention_problems import retention_problems

GROUPS = {"lb": ["lb1"], "app": ["app1", "app2"], "worker": ["app1"], "scheduler": ["app1"], "db": ["db1"]}
REQUIRED = ["lb", "app", "worker", "scheduler", "db"]
SINGLE = ["scheduler", "db"]
CELERY = {"name": "worker", "kind": "celery", "queues": ["celery"], "concurrency": 2}
BEAT = {"name": "beat", "kind": "celery-beat"}
APP = {"app_name": "journal", "app_user": "journal", "app_root": "/srv/journal", "app_http_port": 8000}
KEY = "age1" + "q" * 58


def app(workers=(), **changes):
    return app_problems({**APP, "app_workers": list(workers), "app_slots": {}, **changes}, groups=GROUPS)


# ----------------------------------------------------------------------------- inventory_problems


def test_good_groups_have_no_problem():
    assert inventory_problems(GROUPS, REQUIRED, SINGLE) == []


def test_missing_and_empty_groups_are_named_with_the_required_list():
    (problem,) = inventory_problems({**GROUPS, "db": [], "lb": None} | {"app": []}, REQUIRED, SINGLE)
    assert problem.startswith("Inventory is missing required group(s) lb, app, db (or they hold no host).")
    assert "Required: lb, app, worker, scheduler, db. Rename groups with the opsbook_group_* variables." in problem


def test_single_host_groups_name_their_hosts_and_skip_missing_ones():
    problems = inventory_problems({**GROUPS, "scheduler": ["app1", "app2"]}, REQUIRED + ["broker"], SINGLE + ["broker"])
    assert problems[1] == "Group 'scheduler' must hold exactly one host, it holds 2: app1, app2."
    assert len(problems) == 2 and "broker" in problems[0]  # missing, not also "holds 0"
    (empty,) = inventory_problems({"db": []}, [], ["db"])
    assert empty == "Group 'db' must hold exactly one host, it holds 0: none."


def test_a_renamed_group_whose_canonical_name_holds_strangers():
    groups = {**GROUPS, "webservers": ["web1"], "app": ["web1", "app9"]}
    (problem,) = inventory_problems(groups, [], [], {"app": "webservers"})
    assert problem.startswith("Group 'app' holds app9, not in 'webservers' (opsbook_group_app)")
    assert "Rename that group, or move those hosts to 'webservers'." in problem
    assert inventory_problems({"webservers": ["web1"]}, [], [], {"app": "webservers"}) == []


# ----------------------------------------------------------------------------------- app_problems


def test_good_app_variables_have_no_problem():
    workers = [CELERY, BEAT, {"name": "rq", "kind": "rq", "queues": ["default", "high.p:1"], "count": 3}]
    assert app(workers + [{"name": "sched", "kind": "rq-scheduler"}]) == []
    assert app([{"name": "rq", "kind": "rq", "queues": ["q"], "worker_class": "rq.worker.SimpleWorker"}]) == []


@pytest.mark.parametrize(
    "changes",
    [
        {"app_name": "Journal"},
        {"app_name": "j" * 33},
        {"app_user": "1user"},
        {"app_root": "srv/journal"},
        {"app_http_port": 0},
        {"app_http_port": 65536},
        {"app_http_port": "8000"},
        {"app_http_port": True},
    ],
)
def test_names_root_and_port_name_all_four_variables(changes):
    (problem,) = app(**changes)
    assert problem.startswith("app_name (")
    assert "must be lower-case names of at most 32 characters" in problem
    assert "an absolute path, app_http_port (" in problem and "a port number." in problem


def test_removed_variables_name_their_replacement():
    assert app_problems({**APP, "app_workers": []}, removed=[{"name": "app_port", "use": "app_http_port"}]) == [
        "Variable 'app_port' is no longer read; use 'app_http_port' instead."
    ]


@pytest.mark.parametrize(
    "worker",
    [
        {"name": "nightly", "kind": "cron"},
        {"kind": "celery", "queues": ["q"], "concurrency": 1},
        {"name": "Worker", "kind": "celery", "queues": ["q"], "concurrency": 1},
        {"name": "w", "kind": "celery", "queues": [], "concurrency": 1},
        {"name": "w", "kind": "celery", "queues": ["q"]},
        {"name": "w", "kind": "celery", "queues": ["q"], "concurrency": "0"},
        {"name": "w", "kind": "celery", "queues": None, "concurrency": 1},
        {"name": "w"},
    ],
)
def test_a_malformed_worker_names_the_kinds_and_what_celery_needs(worker):
    (problem,) = app([worker])
    assert problem.startswith(f"app_workers item {worker.get('name', '(no name)')} (kind {worker.get('kind', 'none')})")
    assert "kind celery, celery-beat, rq or rq-scheduler" in problem
    assert "non-empty queues list and concurrency > 0." in problem


@pytest.mark.parametrize(
    ("worker", "expected"),
    [
        (
            {"name": "rq", "kind": "rq"},
            "app_workers item rq (kind rq) needs queues: a non-empty list of RQ queue names.",
        ),
        ({"name": "rq", "kind": "rq", "queues": []}, "needs queues"),
        ({"name": "rq", "kind": "rq", "queues": "default"}, "queues (default) must be a list of queue names"),
        ({"name": "rq", "kind": "rq", "queues": ["ok", "no space"]}, "(letters, digits, _ . : -)."),
        ({"name": "rq", "kind": "rq", "queues": ["q"], "concurrency": 2}, "sets concurrency, which RQ has not"),
        (
            {"name": "rq", "kind": "rq", "queues": ["q"], "count": 0},
            "the number of worker units, an integer from 1 to 64.",
        ),
        ({"name": "rq", "kind": "rq", "queues": ["q"], "count": 65}, "count (65) is invalid"),
        ({"name": "rq", "kind": "rq", "queues": ["q"], "count": "2"}, "count (2) is invalid"),
        ({"name": "s", "kind": "rq-scheduler", "count": 1}, "an rq-scheduler runs once, it has no count."),
        ({"name": "rq", "kind": "rq", "queues": ["q"], "worker_class": "SimpleWorker"}, "must be a dotted Python path"),
    ],
)
def test_rq_workers_name_the_field_and_what_it_takes(worker, expected):
    problems = app([worker])
    assert any(expected in problem for problem in problems), problems


def test_rq_workers_are_refused_with_slots():
    slots = {"blue": {"group": "app", "port": 8001}, "green": {"group": "app", "port": 8002}}
    problems = app([CELERY, {"name": "rq", "kind": "rq", "queues": ["q"]}], app_slots=slots)
    assert problems == [
        "app_workers item rq is kind rq but app_slots is set: RQ workers run under the in-place deploy only"
        " (blue-green slots run Celery workers); remove app_slots or the RQ workers."
    ]


def test_malformed_slots_fail_naming_app_slots():
    with pytest.raises(AnsibleFilterError, match="app_slots must have exactly the keys blue and green"):
        app([CELERY], app_slots={"blue": {"group": "app", "port": 8001}})


def test_beat_and_the_rq_scheduler_run_once():
    assert app([CELERY, BEAT, {**BEAT, "name": "beat2"}]) == [
        "app_workers declares beat, beat2 as celery-beat: beat must run exactly once, declare one."
    ]
    rq = {"name": "rq", "kind": "rq", "queues": ["q"]}
    assert app([rq, {"name": "s1", "kind": "rq-scheduler"}, {"name": "s2", "kind": "rq-scheduler"}]) == [
        "app_workers declares s1, s2 as rq-scheduler: the RQ scheduler must run exactly once, declare one."
    ]


def test_unit_names_stay_distinct():
    workers = [
        {"name": "rq", "kind": "rq", "queues": ["q"], "count": 2},
        {"name": "rq-2", "kind": "rq", "queues": ["q"]},
    ]
    assert app(workers) == [
        "app_workers gives two units the name journal-rq-2.service: worker names must differ, and an rq item"
        " with count N also names <name>-1 .. <name>-N."
    ]
    beat_as_worker = {**CELERY, "name": "beat"}
    assert "journal-worker.service, journal-beat.service:" in app([CELERY, CELERY, BEAT, beat_as_worker])[0]


# ----------------------------------------------------------------------------- retention_problems


@pytest.mark.parametrize(
    "policy",
    [
        {"keep_last": 7, "keep_days": 0, "keep_daily": 7, "keep_weekly": 4, "keep_monthly": 6},
        {"keep_days": "30"},
        {"keep_last": None, "keep_daily": ""},
        {},
    ],
)
def test_good_policies_have_no_problem(policy):
    assert retention_problems(policy) == []


@pytest.mark.parametrize(
    ("policy", "detail"),
    [
        ({"keep_last": -1}, "keep_last is -1"),
        ({"keep_lats": 3}, "keep_lats is not a rule"),
        ({"keep_days": 1.5}, "keep_days is 1.5"),
        ({"keep_days": 5.0}, "keep_days is 5.0"),
        ({"keep_weekly": True}, "keep_weekly is True"),
        ({"keep_monthly": " 5"}, "keep_monthly is ' 5'"),
        ({"keep_daily": "x"}, "keep_daily is 'x'"),
    ],
)
def test_a_bad_policy_names_the_variable_the_rules_and_the_bad_rule(policy, detail):
    (problem,) = retention_problems(policy)
    assert problem.startswith(
        f"backup_retention ({policy}) must map keep_last, keep_days, keep_daily, keep_weekly or keep_monthly"
        " to whole numbers, 0 or more: "
    )
    assert problem.endswith(detail)


def test_a_policy_that_is_not_a_mapping_and_another_variable_name():
    (problem,) = retention_problems([7], "backup_store_retention")
    assert problem.startswith("backup_store_retention ([7]) must map keep_last")
    assert problem.endswith("(a mapping is expected, got a list)")
    assert retention_problems("7")[0].endswith("(a mapping is expected, got text)")


# ------------------------------------------------------------------------- age_recipient_problems


def test_good_recipients_have_no_problem():
    assert age_recipient_problems([]) == []
    assert age_recipient_problems([KEY, "age1" + "p" * 58]) == []


def test_bad_recipients_are_named_by_position_never_by_value():
    secret = "AGE-SECRET-KEY-1" + "Q" * 58
    (problem,) = age_recipient_problems([KEY, secret, "age1short", 7])
    assert problem == (
        "backup_encrypt_recipients must be a list of age public keys ('age1' and 58 bech32 characters, as"
        " age-keygen prints after 'Public key:'); not one: backup_encrypt_recipients[1], backup_encrypt_recipients[2],"
        " backup_encrypt_recipients[3]"
    )
    assert secret not in problem and "age1short" not in problem


@pytest.mark.parametrize("value", [KEY, {"key": KEY}, None, 7])
def test_recipients_that_are_not_a_list(value):
    (problem,) = age_recipient_problems(value)
    assert problem.endswith("not one: backup_encrypt_recipients itself (a list is expected)")
    assert KEY not in problem


def test_a_recipient_listed_twice():
    assert age_recipient_problems([KEY, KEY]) == ["backup_encrypt_recipients lists a recipient twice"]


def test_celery_workers_need_app_celery_app_and_an_app_without_them_does_not():
    for value in ("", "  ", None):
        (problem,) = app([CELERY, BEAT], app_celery_app=value)
        assert problem.startswith("app_celery_app must name the Celery application"), problem
        assert "worker, beat of kind celery or celery-beat" in problem
    assert app([CELERY], app_celery_app="journal") == []
    rq = {"name": "rq", "kind": "rq", "queues": ["default"]}
    assert app([rq, {"name": "sched", "kind": "rq-scheduler"}], app_celery_app="") == []
    assert app([], app_celery_app="") == []
    # Not given at all: not checked (callers that do not pass it).
    assert app([CELERY]) == []


def test_installer_extras_and_extra_requirements_fit_the_installer():
    pyproject = {"app_installer": "pyproject", "app_install_extras": ["database"]}
    assert app(**pyproject, app_extra_requirements=["gunicorn==23.0.0", "gunicorn[gevent]>=22"]) == []
    assert app(app_extra_requirements=["gunicorn==23.0.0"]) == []  # the default installer, requirements
    (problem,) = app(app_install_extras=["database"])
    assert problem == (
        "app_install_extras (database) needs app_installer pyproject (got requirements):"
        " extras are the project's own optional dependencies."
    )
    (problem,) = app(app_installer="pyproject", app_install_extras=["data base"])
    assert problem.startswith("app_install_extras must be a list of extra names"), problem
    (problem,) = app(app_installer="pyproject", app_install_extras="database")
    assert problem.startswith("app_install_extras must be a list"), problem
    for installer in ("pipenv", "poetry"):
        (problem,) = app(app_installer=installer, app_extra_requirements=["gunicorn==23.0.0"])
        assert problem.startswith(
            f"app_extra_requirements (gunicorn==23.0.0) cannot be installed with app_installer {installer}"
        ), problem
    for bad in (["-r", "other.txt"], ["gunicorn == 23"], "gunicorn"):
        (problem,) = app(app_extra_requirements=bad)
        assert problem.startswith("app_extra_requirements must be a list of requirements"), problem


# ----------------------------------------------------------------------------- renamed_groups


def test_only_groups_given_another_name_are_renamed() -> None:
    from ansible_collections.opsbook.webstack.plugins.filter.renamed_groups import renamed_groups

    names = ["lb", "app", "worker", "db"]
    assert renamed_groups(names, ["", "webservers", "worker", "postgres"]) == {"app": "webservers", "db": "postgres"}
    assert renamed_groups(names, ["", "", "", ""]) == {}
    with pytest.raises(ValueError, match="4 group names but 3 values"):
        renamed_groups(names, ["", "", ""])


def test_a_renamed_groups_hosts_are_added_to_the_canonical_name_once() -> None:
    from ansible_collections.opsbook.webstack.plugins.filter.renamed_groups import renamed_group_additions

    groups = {"webservers": ["app1", "app2"], "app": ["app1"], "postgres": ["db1"]}
    assert renamed_group_additions(groups, {"app": "webservers", "db": "postgres", "lb": "balancers"}) == [
        {"host": "app2", "group": "app"},
        {"host": "db1", "group": "db"},
    ]
    assert renamed_group_additions(groups, {}) == []


# ----------------------------------------------------------------------------- app_problems_by_host


def test_each_hosts_view_gets_every_check_and_a_host_without_problems_none() -> None:
    from ansible_collections.opsbook.webstack.plugins.filter.app_problems import app_problems_by_host

    good = {**APP, "app_workers": [CELERY], "app_celery_app": "journal"}
    views = {
        "app1": {"values": good, "unset": []},
        # app_celery_app unset with a Celery worker; a removed variable set; a malformed app_commands.
        "app2": {
            "values": {**APP, "app_workers": [CELERY], "deploy_phase": "x", "app_commands": "migrate"},
            "unset": [],
        },
    }
    removed = [{"name": "deploy_phase", "use": "tasks_from"}, {"name": "other", "use": "x"}]
    problems = app_problems_by_host(views, removed, GROUPS)
    assert problems["app1"] == []
    assert problems["app2"][0] == "Variable 'deploy_phase' is no longer read; use 'tasks_from' instead."
    assert any(p.startswith("app_celery_app must name the Celery application") for p in problems["app2"])
    assert any("app_commands" in p for p in problems["app2"][2:]), problems["app2"]


def test_each_hosts_view_checks_the_installer_options() -> None:
    from ansible_collections.opsbook.webstack.plugins.filter.app_problems import app_problems_by_host

    extras = {**APP, "app_install_extras": ["database"]}
    views = {
        "app1": {"values": {**extras, "app_installer": "pyproject"}, "unset": []},
        "app2": {"values": extras, "unset": []},  # extras with the default installer, requirements
    }
    problems = app_problems_by_host(views, [], GROUPS)
    assert problems["app1"] == []
    assert problems["app2"] == [
        "app_install_extras (database) needs app_installer pyproject (got requirements):"
        " extras are the project's own optional dependencies."
    ]


# --------------------------------------------------------- app_redis false: what needs Redis (issue 25)

RABBIT = {"kind": "rabbitmq", "host": "mq1", "vhost": "ca", "user": "ca", "password": "hunter2"}
RQ = {"name": "rq", "kind": "rq", "queues": ["default"]}


@pytest.mark.parametrize(
    ("workers", "changes"),
    [
        ((), {}),  # ihatemoney: no task queue
        ((CELERY, BEAT), {"app_broker": RABBIT}),  # django-ca: Celery on RabbitMQ
        ((CELERY,), {"app_broker": RABBIT, "app_result_backend": "db+postgresql://ca:hunter2@db1/ca"}),
        ((), {"app_result_backend": "rpc://"}),
    ],
    ids=["no-queue", "rabbitmq", "rabbitmq-db-results", "rpc-results"],
)
@pytest.mark.parametrize("off", [False, "false"])
def test_an_app_without_redis_that_needs_none_has_no_problem(workers, changes, off):
    assert app(workers, app_redis=off, **changes) == []


@pytest.mark.parametrize(
    ("workers", "changes", "expected"),
    [
        (
            (RQ,),
            {},
            "app_workers declares rq (kind rq), but app_redis is false (the app uses no Redis): RQ runs on Redis",
        ),
        (
            ({"name": "sched", "kind": "rq-scheduler"},),
            {},
            "app_workers declares sched (kind rq-scheduler), but app_redis",
        ),
        (
            (CELERY, BEAT),
            {},
            "app_workers declares worker, beat of kind celery or celery-beat, whose broker is the Redis",
        ),
        (
            (CELERY,),
            {"app_broker": {"kind": "redis", "host": "c1", "password": "hunter2"}},
            "app_broker is of kind redis",
        ),
        ((CELERY,), {"app_broker": {"host": "c1"}}, "app_broker is of kind redis, but app_redis is false"),
        (
            (CELERY,),
            {"app_broker": RABBIT, "app_result_backend": " Redis://:hunter2@c1:6379/1"},
            "app_result_backend is a Redis URL, but app_redis is false",
        ),
        ((), {"app_result_backend": "rediss://:hunter2@c1:6380/1"}, "app_result_backend is a Redis URL"),
    ],
    ids=[
        "rq",
        "rq-scheduler",
        "celery-no-broker",
        "redis-broker",
        "redis-broker-default-kind",
        "redis-results",
        "rediss",
    ],
)
def test_what_needs_redis_is_refused_naming_the_variable_and_never_the_secret(workers, changes, expected):
    (problem,) = app(workers, app_redis=False, **changes)
    assert problem.startswith(expected), problem
    assert "app_redis: true with app_redis_host, app_redis_port, app_redis_db and app_redis_password" in problem
    assert "hunter2" not in problem


@pytest.mark.parametrize("on", [True, "yes", None])
def test_with_redis_on_or_unset_nothing_changes(on):
    """The default (app_redis unset or true): RQ, a Redis broker and a Redis result backend, as before."""
    changes = {} if on is None else {"app_redis": on}
    assert app((RQ, CELERY), app_result_backend="redis://:x@c1:6379/1", **changes) == []


def test_the_redis_variables_are_required_only_where_app_redis_is_true():
    redis_names = ["app_redis_host", "app_redis_port", "app_redis_db", "app_redis_password"]
    views = {
        "app1": {"values": {"app_redis": False}, "unset": [*redis_names, "app_secret_key"]},
        "app2": {"values": {}, "unset": ["app_redis", *redis_names]},
        "db1": {"values": {"app_redis": "true", "app_redis_host": "db1"}, "unset": redis_names[1:]},
        "lb1": {"values": {"app_redis": "no"}, "unset": ["app_redis_port"]},
    }
    assert app_required_unset(views, redis_names) == {
        "app1": ["app_secret_key"],
        "app2": redis_names,
        "db1": redis_names[1:],
        "lb1": [],
    }
