"""Report levels of the query and cache insight metrics (maintenance.yml, issue 23 item 5)."""

import pytest
from ansible_collections.opsbook.webstack.plugins.module_utils.health import HealthError, assess, thresholds


def one(metric, value, overrides=None):
    return assess([{"check": "c", "host": "h", "metric": metric, "value": value}], overrides)["findings"][0]["level"]


@pytest.mark.parametrize(
    ("metric", "value", "expected"),
    [
        ("lock_wait_seconds", 2, "ok"),
        ("lock_wait_seconds", 10, "warning"),
        ("lock_wait_seconds", 60, "critical"),
        ("statement_mean_ms", 999, "ok"),
        ("statement_mean_ms", 1000, "warning"),
        ("statement_mean_ms", 5000, "critical"),
        ("redis_memory_percent", 79, "ok"),
        ("redis_memory_percent", 85, "warning"),
        ("redis_memory_percent", 90, "critical"),
        ("redis_fragmentation_ratio", 1.2, "ok"),
        ("redis_fragmentation_ratio", 1.5, "warning"),
        ("redis_fragmentation_ratio", 2.5, "critical"),
        ("redis_latency_ms", 0.3, "ok"),
        ("redis_latency_ms", 10, "warning"),
        ("redis_latency_ms", 100, "critical"),
    ],
)
def test_high_is_bad(metric, value, expected):
    assert one(metric, value) == expected


@pytest.mark.parametrize(
    ("percent", "expected"), [(99, "ok"), (80, "warning"), (60, "warning"), (50, "critical"), (0, "critical")]
)
def test_cache_hit_rate_is_bad_when_low(percent, expected):
    assert one("cache_hit_percent", percent) == expected


def test_a_hit_rate_warning_below_its_critical_is_refused():
    with pytest.raises(HealthError, match="cache_hit_percent: warning .* must be above critical"):
        thresholds({"cache_hit_percent": {"warning": 40}})


@pytest.mark.parametrize(("value", "expected"), [(0, "ok"), (1, "warning")])
def test_a_failed_scheduled_job_is_a_warning(value, expected):
    assert one("schedule_failed", value) == expected
