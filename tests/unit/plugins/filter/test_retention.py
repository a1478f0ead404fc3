"""Retention planning: which backups a rotation keeps and which it deletes, and why."""

import datetime as dt

import pytest
from ansible_collections.opsbook.webstack.plugins.module_utils.retention import RetentionError, plan

NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)


def backups(*ages_hours, verified=True):
    return [
        {"id": f"b{i:03d}", "time": (NOW - dt.timedelta(hours=h)).isoformat(), "verified": verified}
        for i, h in enumerate(ages_hours)
    ]


def test_no_rule_keeps_everything():
    result = plan(backups(1, 30, 300), {}, NOW)
    assert result["delete"] == []
    assert sorted(result["keep"]) == ["b000", "b001", "b002"]


def test_keep_last_keeps_the_newest_n():
    result = plan(backups(1, 2, 3, 4, 5), {"keep_last": 2}, NOW)
    assert result["keep"] == ["b000", "b001"]
    assert result["delete"] == ["b002", "b003", "b004"]
    assert "last 2" in result["reasons"]["b001"][0]


def test_keep_days_keeps_everything_younger():
    result = plan(backups(1, 23, 25, 49), {"keep_days": 1}, NOW)
    assert result["keep"] == ["b000", "b001"]
    assert result["delete"] == ["b002", "b003"]


def test_newest_verified_backup_is_never_deleted_even_when_every_rule_lets_it_go():
    # Every backup is older than keep_days: the rule alone would delete all of them.
    result = plan(backups(100, 200, 300), {"keep_days": 1}, NOW)
    assert result["keep"] == ["b000"]
    assert result["delete"] == ["b001", "b002"]
    assert any("newest verified" in r for r in result["reasons"]["b000"])


def test_unverified_backups_never_count_and_the_newest_verified_one_survives():
    items = backups(1, 2, verified=False) + [
        {"id": "good", "time": (NOW - dt.timedelta(hours=50)).isoformat(), "verified": True}
    ]
    result = plan(items, {"keep_last": 1}, NOW)
    assert result["keep"] == ["good"]
    assert sorted(result["delete"]) == ["b000", "b001"]


def test_grandfather_father_son():
    # One backup every 6 hours for 70 days.
    items = backups(*range(0, 70 * 24, 6))
    result = plan(items, {"keep_daily": 7, "keep_weekly": 4, "keep_monthly": 3}, NOW)
    kept_times = [dt.datetime.fromisoformat(b["time"]) for b in items if b["id"] in result["keep"]]
    days = {t.date() for t in kept_times}
    # The 7 newest days each keep their newest backup.
    assert {NOW.date() - dt.timedelta(days=d) for d in range(7)} <= days
    weeks = {t.isocalendar()[:2] for t in kept_times}
    months = {(t.year, t.month) for t in kept_times}
    assert len(weeks) >= 4
    assert len(months) == 3
    # At most one backup kept per day, and far fewer than all of them.
    assert len(result["keep"]) == len(days) < len(items) / 10
    assert set(result["keep"]).isdisjoint(result["delete"])
    assert len(result["keep"]) + len(result["delete"]) == len(items)


def test_daily_keeps_the_newest_backup_of_each_day():
    items = [
        {"id": "morning", "time": "2026-11-22T06:00:00+00:00", "verified": True},
        {"id": "evening", "time": "2026-11-21T20:00:00+00:00", "verified": True},
        {"id": "noon", "time": "2026-11-21T12:00:00+00:00", "verified": True},
    ]
    result = plan(items, {"keep_daily": 2}, NOW)
    assert result["keep"] == ["morning", "evening"]
    assert result["delete"] == ["noon"]


def test_rules_combine_as_a_union():
    result = plan(backups(1, 2, 30, 60), {"keep_last": 1, "keep_days": 2}, NOW)
    assert result["keep"] == ["b000", "b001", "b002"]
    assert result["delete"] == ["b003"]


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ({"keep_last": -1}, "keep_last"),
        ({"keep_weekly": "many"}, "keep_weekly"),
        ({"keep_yearly": 1}, "keep_yearly"),
    ],
)
def test_bad_policy_names_the_setting(policy, message):
    with pytest.raises(RetentionError, match=message):
        plan(backups(1), policy, NOW)


def test_bad_backup_entry_is_named():
    with pytest.raises(RetentionError, match="b9"):
        plan([{"id": "b9", "time": "yesterday", "verified": True}], {"keep_last": 1}, NOW)


def test_filter_plugin_exposes_the_planner():
    from ansible_collections.opsbook.webstack.plugins.filter.retention_plan import FilterModule

    filters = FilterModule().filters()
    result = filters["retention_plan"](backups(1, 2, 3), {"keep_last": 1}, NOW.isoformat())
    assert result["keep"] == ["b000"]
