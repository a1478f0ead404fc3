"""Report levels: each measurement against the seeds' thresholds or the user's overrides."""

import pytest
from ansible_collections.opsbook.webstack.plugins.module_utils.health import (
    DEFAULT_THRESHOLDS,
    HealthError,
    assess,
    thresholds,
)


def one(metric, value, overrides=None, **extra):
    result = assess([{"check": "c", "host": "h", "metric": metric, "value": value, **extra}], overrides)
    return result["findings"][0]["level"]


@pytest.mark.parametrize(
    ("metric", "value", "expected"),
    [
        ("disk_percent", 79.9, "ok"),
        ("disk_percent", 80, "warning"),
        ("disk_percent", 89.9, "warning"),
        ("disk_percent", 90, "critical"),
        ("memory_percent", 85, "warning"),
        ("memory_percent", 95, "critical"),
        ("connections_percent", 80, "warning"),
        ("query_seconds", 9.5, "ok"),
        ("query_seconds", 12, "warning"),
        ("queue_depth", 99, "ok"),
        ("queue_depth", 100, "warning"),
        ("queue_depth", 1000, "critical"),
        ("error_lines", 0, "ok"),
        ("error_lines", 3, "warning"),
        ("failed", 0, "ok"),
        ("failed", 1, "critical"),
    ],
)
def test_high_is_bad(metric, value, expected):
    assert one(metric, value) == expected


@pytest.mark.parametrize(
    ("days", "expected"), [(90, "ok"), (30, "warning"), (10, "warning"), (7, "critical"), (-1, "critical")]
)
def test_certificates_are_bad_when_few_days_are_left(days, expected):
    assert one("certificate_days", days) == expected


def test_the_seed_defaults():
    assert DEFAULT_THRESHOLDS["disk_percent"] == {"warning": 80, "critical": 90}
    assert DEFAULT_THRESHOLDS["memory_percent"] == {"warning": 80, "critical": 90}
    assert DEFAULT_THRESHOLDS["connections_percent"]["warning"] == 80
    assert DEFAULT_THRESHOLDS["query_seconds"]["warning"] == 10
    assert DEFAULT_THRESHOLDS["queue_depth"] == {"warning": 100, "critical": 1000}
    assert DEFAULT_THRESHOLDS["certificate_days"] == {"warning": 30, "critical": 7}


def test_an_override_replaces_one_level_and_keeps_the_other():
    assert one("disk_percent", 5, {"disk_percent": {"warning": 1}}) == "warning"
    assert thresholds({"disk_percent": {"warning": 1}})["disk_percent"] == {"warning": 1, "critical": 90}


def test_unknown_and_unmeasured():
    assert one(None, 12345) == "ok"
    assert one("no_such_metric", 12345) == "ok"
    assert one("disk_percent", None) == "unknown"
    assert one("failed", None, required=True) == "critical"


def test_a_numeric_string_is_read_as_a_number():
    assert one("disk_percent", "91") == "critical"


def test_findings_are_sorted_worst_first_with_counts():
    result = assess(
        [
            {"check": "disk", "host": "b", "metric": "disk_percent", "value": 10},
            {"check": "disk", "host": "a", "metric": "disk_percent", "value": 95},
            {"check": "memory", "host": "a", "metric": "memory_percent", "value": 85},
        ]
    )
    assert [f["level"] for f in result["findings"]] == ["critical", "warning", "ok"]
    assert result["counts"] == {"ok": 1, "unknown": 0, "warning": 1, "critical": 1}
    assert result["worst"] == "critical"
    assert result["findings"][0]["threshold"] == {"warning": 80, "critical": 90}
    assert assess([])["worst"] == "ok"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"disk_percent": 80}, "threshold disk_percent: expected a mapping"),
        ({"disk_percent": {"warn": 80}}, "unknown key(s) warn"),
        ({"disk_percent": {"warning": "high"}}, "threshold disk_percent.warning: expected a number"),
        ({"disk_percent": {"warning": 95}}, "warning (95) must be at most critical (90)"),
        ({"certificate_days": {"critical": 60}}, "warning (30) must be above critical (60)"),
        ({"my_metric": {"warning": 3}}, "a new metric needs both warning and critical"),
    ],
)
def test_bad_thresholds_name_what_is_wrong(overrides, message):
    with pytest.raises(HealthError) as info:
        thresholds(overrides)
    assert message in str(info.value)


def test_a_bad_measurement_is_named():
    with pytest.raises(HealthError, match=r"measurement 1 \(disk\): value 'full' is not a number"):
        assess([{"check": "ok"}, {"check": "disk", "metric": "disk_percent", "value": "full"}])
    with pytest.raises(HealthError, match="measurement 0: expected a mapping"):
        assess(["disk"])


def test_the_filter_raises_an_ansible_error():
    from ansible.errors import AnsibleFilterError
    from ansible_collections.opsbook.webstack.plugins.filter.health_assess import FilterModule

    filters = FilterModule().filters()
    assert filters["health_assess"]([{"check": "x", "metric": "failed", "value": 1}])["worst"] == "critical"
    with pytest.raises(AnsibleFilterError, match="health_assess: threshold failed"):
        filters["health_assess"]([], {"failed": {"warning": "x"}})


def test_rows_become_measurements():
    from ansible_collections.opsbook.webstack.plugins.module_utils.health import measure

    rows = [{"name": "public.t", "dead_percent": 42.0, "dead_detail": "42 dead of 100 rows"}]
    [m] = measure(rows, "db1", "dead tuples", "dead_tuples_percent", "dead_percent", "%", "name", "dead_detail")
    assert m == {
        "host": "db1",
        "check": "dead tuples",
        "subject": "public.t",
        "metric": "dead_tuples_percent",
        "value": 42.0,
        "unit": "%",
        "detail": "42 dead of 100 rows",
    }
    assert assess([m])["worst"] == "warning"
    with pytest.raises(HealthError, match=r"dead tuples row 0: no 'dead_percent'"):
        measure([{"name": "t"}], "db1", "dead tuples", "dead_tuples_percent", "dead_percent", "%", "name")
