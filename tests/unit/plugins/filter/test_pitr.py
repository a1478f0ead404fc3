"""Issue 23 item 1: pgBackRest's info summed up, and restore target times checked before anything
changes (bad strings, no zone, before the oldest backup, in the future, a stanza without backups),
each refusal naming restore_target_time."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from ansible_collections.opsbook.webstack.plugins.filter.pitr_summary import pitr_summary
from ansible_collections.opsbook.webstack.plugins.filter.pitr_target_refusal import parse_target, pitr_target_refusal

T0 = datetime(2026, 12, 6, 3, 0, tzinfo=UTC).timestamp()

# The shape `pgbackrest --stanza=journal --output=json info` prints (2.45), trimmed.
INFO = [
    {
        "name": "journal",
        "status": {"code": 0, "message": "ok", "lock": {"backup": {"held": False}}},
        "archive": [{"id": "15-1", "min": "000000010000000000000003", "max": "00000001000000000000000A"}],
        "backup": [
            {
                "label": "20261206-031000F_20261206-032000I",
                "type": "incr",
                "timestamp": {"start": T0 + 1190, "stop": T0 + 1200},
                "info": {"size": 30000000, "repository": {"size": 4000000, "delta": 200000}},
            },
            {
                "label": "20261206-031000F",
                "type": "full",
                "timestamp": {"start": T0 + 590, "stop": T0 + 600},
                "info": {"size": 30000000, "repository": {"size": 4000000, "delta": 4000000}},
            },
        ],
    },
    {"name": "other", "status": {"code": 2, "message": "no valid backups"}, "backup": [], "archive": []},
]


def test_summary_orders_backups_and_measures_the_newest_age():
    s = pitr_summary(INFO, "journal", T0 + 1500)
    assert s["status_code"] == 0
    assert [b["type"] for b in s["backups"]] == ["full", "incr"]
    assert s["oldest_restorable"] == T0 + 600
    assert s["last_backup_age_seconds"] == 300
    assert (s["archive_min"], s["archive_max"]) == ("000000010000000000000003", "00000001000000000000000A")
    assert s["backups"][1]["repo_size"] == 200000


def test_summary_of_a_missing_or_empty_stanza():
    assert pitr_summary(INFO, "nosuch", T0)["status_code"] == -1
    empty = pitr_summary(INFO, "other", T0)
    assert (empty["status_code"], empty["backups"], empty["last_backup_age_seconds"]) == (2, [], None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-06 03:40:00+00", datetime(2026, 12, 6, 3, 40, tzinfo=UTC)),
        ("2026-12-06T03:40:00Z", datetime(2026, 12, 6, 3, 40, tzinfo=UTC)),
        ("2026-12-06 03:40 UTC", datetime(2026, 12, 6, 3, 40, tzinfo=UTC)),
        ("2026-12-06 05:40:00.250+02:00", datetime(2026, 12, 6, 3, 40, 0, 250000, tzinfo=UTC)),
        ("2026-12-06 05:40:00+0200", datetime(2026, 12, 6, 3, 40, tzinfo=UTC)),
    ],
)
def test_target_times_with_their_zone_parse(text, expected):
    assert parse_target(text) == expected


@pytest.mark.parametrize(
    ("target", "fragment"),
    [
        ("yesterday", "must be a date and time with its time zone"),
        ("2026-12-06 03:40:00", "must be a date and time with its time zone"),  # no zone: ambiguous
        ("2026-13-06 03:40:00+00", "is not a valid time"),
        ("", "must be a date and time"),
        ("2026-12-06 03:05:00+00", "before the end of the oldest backup kept (2026-12-06 03:10:00+00:00)"),
        ("2026-12-06 04:00:00+00", "is in the future"),
    ],
)
def test_bad_targets_are_refused_naming_the_variable(target, fragment):
    refusal = pitr_target_refusal(target, pitr_summary(INFO, "journal", T0 + 1500), T0 + 1500)
    assert refusal.startswith("restore_target_time")
    assert fragment in refusal


def test_a_target_between_the_oldest_backup_and_now_is_accepted():
    summary = pitr_summary(INFO, "journal", T0 + 1500)
    assert pitr_target_refusal("2026-12-06 03:15:00+00", summary, T0 + 1500) == ""
    assert pitr_target_refusal("latest", summary, T0 + 1500) == ""


def test_a_stanza_without_backups_refuses_every_target():
    for summary in (pitr_summary(INFO, "other", T0), pitr_summary(INFO, "nosuch", T0)):
        assert "backup" in pitr_target_refusal("2026-12-06 03:15:00+00", summary, T0 + 1500)
        assert "no backup" in pitr_target_refusal("latest", summary, T0 + 1500)
