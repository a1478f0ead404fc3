"""Blue-green slots: which units each host gets, which servers the load balancer lists."""

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.opsbook.webstack.plugins.filter.app_backends import app_backends
from ansible_collections.opsbook.webstack.plugins.filter.app_units import app_units
from ansible_collections.opsbook.webstack.plugins.module_utils.slots import SlotError, check_slots, other_slot

WORKERS = [
    {"name": "worker", "kind": "celery", "queues": ["celery"], "concurrency": 2},
    {"name": "beat", "kind": "celery-beat"},
]
GROUPS = {
    "lb": ["lb1"],
    "app": ["app1", "app2"],
    "worker": ["app1", "app2"],
    "scheduler": ["app1"],
    "app_blue": ["app1"],
    "app_green": ["app2"],
    "db": ["db1"],
}
B = {"group": "app", "port": 8001}
PORTS = {"blue": {"group": "app", "port": 8001}, "green": {"group": "app", "port": "8002"}}
HOST_GROUPS = {"blue": {"group": "app_blue", "port": 8000}, "green": {"group": "app_green", "port": 8000}}


def names(units):
    return [u["unit"] for u in units]


def test_without_slots_the_classic_units_run_from_current():
    assert names(app_units("app1", "journal", WORKERS, GROUPS)) == [
        "journal.socket",
        "journal.service",
        "journal-worker.service",
        "journal-beat.service",
    ]
    assert names(app_units("app2", "journal", WORKERS, GROUPS)) == [
        "journal.socket",
        "journal.service",
        "journal-worker.service",
    ]
    assert {u["pointer"] for u in app_units("app1", "journal", WORKERS, GROUPS)} == {"current"}
    assert [u["celery_name"] for u in app_units("app1", "journal", WORKERS, GROUPS) if u["kind"] == "worker"] == [
        "worker"
    ]
    assert app_units("db1", "journal", WORKERS, GROUPS) == []


def test_two_ports_every_app_host_gets_both_slots_and_beat_once_per_slot_on_the_scheduler():
    app1 = app_units("app1", "journal", WORKERS, GROUPS, PORTS)
    assert names(app1) == [
        "journal-blue.socket",
        "journal-blue.service",
        "journal-blue-worker.service",
        "journal-blue-beat.service",
        "journal-green.socket",
        "journal-green.service",
        "journal-green-worker.service",
        "journal-green-beat.service",
    ]
    assert {(u["slot"], u["pointer"]) for u in app1} == {("blue", "blue"), ("green", "green")}
    assert [u["celery_name"] for u in app1 if u["kind"] == "worker"] == ["worker-blue", "worker-green"]
    assert "beat" not in " ".join(names(app_units("app2", "journal", WORKERS, GROUPS, PORTS)))


def test_host_groups_each_host_runs_its_slot_and_each_slot_has_one_beat():
    app1 = app_units("app1", "journal", WORKERS, GROUPS, HOST_GROUPS)
    app2 = app_units("app2", "journal", WORKERS, GROUPS, HOST_GROUPS)
    assert names(app1) == [
        "journal-blue.socket",
        "journal-blue.service",
        "journal-blue-worker.service",
        "journal-blue-beat.service",
    ]
    # the scheduler (app1) is not in green's group: green's beat goes to green's first host
    assert names(app2) == [
        "journal-green.socket",
        "journal-green.service",
        "journal-green-worker.service",
        "journal-green-beat.service",
    ]


def test_renamed_groups_are_followed():
    groups = {"web": ["w1"], "bg": ["w1"], "cron": ["w1"]}
    units = app_units("w1", "shop", WORKERS, groups, None, {"app": "web", "worker": "bg", "scheduler": "cron"})
    assert names(units) == ["shop.socket", "shop.service", "shop-worker.service", "shop-beat.service"]


def test_backends_without_slots_are_the_app_hosts_all_active():
    assert app_backends({}, GROUPS, "app", 8000) == [
        {"name": "app1", "host": "app1", "port": 8000, "slot": "", "active": True},
        {"name": "app2", "host": "app2", "port": 8000, "slot": "", "active": True},
    ]


@pytest.mark.parametrize("active", ["blue", "green"])
def test_backends_list_both_slots_and_mark_the_active_one(active):
    servers = app_backends(PORTS, GROUPS, "app", 8000, active)
    assert [(s["name"], s["port"]) for s in servers] == [
        ("app1-blue", 8001),
        ("app2-blue", 8001),
        ("app1-green", 8002),
        ("app2-green", 8002),
    ]
    assert {s["slot"] for s in servers if s["active"]} == {active}


def test_backends_host_groups():
    servers = app_backends(HOST_GROUPS, GROUPS, "app", 8000, "green")
    assert [(s["host"], s["port"], s["active"]) for s in servers] == [("app1", 8000, False), ("app2", 8000, True)]


@pytest.mark.parametrize(
    ("slots", "message"),
    [
        ({"blue": B}, "exactly the keys blue and green"),
        ({"blue": B, "red": {"group": "app", "port": 8002}}, "exactly the keys blue and green"),
        (
            {"blue": {"group": "app"}, "green": {"group": "app", "port": 8002}},
            "app_slots.blue must be a mapping with group and port",
        ),
        (
            {"blue": {"group": "nope", "port": 8001}, "green": {"group": "app", "port": 8002}},
            "app_slots.blue.group 'nope'",
        ),
        ({"blue": B, "green": {"group": "app", "port": 0}}, "app_slots.green.port must be a port number"),
        ({"blue": B, "green": {"group": "app", "port": "x"}}, "app_slots.green.port must be a port number"),
        ({"blue": B, "green": {"group": "app_blue", "port": 8001}}, "need different ports"),
    ],
)
def test_bad_slots_are_refused_naming_the_variable(slots, message):
    with pytest.raises(SlotError, match=message):
        check_slots(slots, GROUPS)
    with pytest.raises(AnsibleFilterError, match="app_units: .*" + message):
        app_units("app1", "journal", WORKERS, GROUPS, slots)
    with pytest.raises(AnsibleFilterError, match="app_backends: .*" + message):
        app_backends(slots, GROUPS, "app", 8000)


def test_the_active_slot_must_be_a_slot():
    with pytest.raises(AnsibleFilterError, match="active slot must be blue or green"):
        app_backends(PORTS, GROUPS, "app", 8000, "purple")


def test_other_slot():
    assert other_slot("blue") == "green"
    assert other_slot("green") == "blue"
    with pytest.raises(SlotError):
        other_slot("")


def test_nginx_upstream_lists_only_the_active_slot():
    from ansible_collections.opsbook.webstack.plugins.filter.nginx_upstream import nginx_upstream

    text = nginx_upstream(app_backends(PORTS, GROUPS, "app", 8000, "green"), "journal")
    assert "upstream journal_app {" in text
    assert "# Slot: green" in text
    servers = [line.strip() for line in text.splitlines() if line.strip().startswith("server ")]
    assert servers == [
        "server app1:8002 max_fails=3 fail_timeout=5s;",
        "server app2:8002 max_fails=3 fail_timeout=5s;",
    ]
    classic = nginx_upstream(app_backends({}, GROUPS, "app", 8000), "journal")
    assert "server app1:8000 " in classic and "server app2:8000 " in classic


RQ_WORKERS = [
    {"name": "rq", "kind": "rq", "queues": ["high", "default"], "count": 2},
    {"name": "mail", "kind": "rq", "queues": ["mail", "default"]},
    {"name": "rqsched", "kind": "rq-scheduler"},
]


def test_rq_units_count_per_worker_host_and_the_scheduler_once():
    app1 = app_units("app1", "sims", RQ_WORKERS, GROUPS)
    assert names(app1) == [
        "sims.socket",
        "sims.service",
        "sims-rq-1.service",
        "sims-rq-2.service",
        "sims-mail.service",
        "sims-rqsched.service",
    ]
    by_unit = {u["unit"]: u for u in app1}
    assert by_unit["sims-rq-2.service"]["rq_base"] == "rq-2"
    assert by_unit["sims-rq-2.service"]["queues"] == ["high", "default"]
    assert by_unit["sims-mail.service"]["rq_base"] == "mail"
    # The scheduler without queues of its own takes every RQ worker's, each once, in order.
    assert by_unit["sims-rqsched.service"]["kind"] == "rq-scheduler"
    assert by_unit["sims-rqsched.service"]["queues"] == ["high", "default", "mail"]
    assert all(u["pointer"] == "current" and u["slot"] == "" for u in app1)
    # app2 is a worker host, not the scheduler.
    assert "sims-rqsched.service" not in names(app_units("app2", "sims", RQ_WORKERS, GROUPS))
    assert "sims-rq-1.service" in names(app_units("app2", "sims", RQ_WORKERS, GROUPS))
    # A host only in app gets no worker.
    only_web = {**GROUPS, "worker": ["app2"], "scheduler": ["app2"]}
    assert names(app_units("app1", "sims", RQ_WORKERS, only_web)) == ["sims.socket", "sims.service"]


def test_an_rq_scheduler_with_its_own_queues_keeps_them():
    workers = [{"name": "sched", "kind": "rq-scheduler", "queues": ["cron"]}]
    assert app_units("app1", "sims", workers, GROUPS)[-1]["queues"] == ["cron"]
    assert app_units("app1", "sims", [{"name": "s", "kind": "rq-scheduler"}], GROUPS)[-1]["queues"] == ["default"]
