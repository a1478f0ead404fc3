"""Issue 19 item 7: the names a restore gives databases, and the maintenance finder that lists
the pre-restore databases it keeps, tried with the same examples against a real PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ansible_collections.opsbook.webstack.plugins.filter.restore_names import FilterModule
from ansible_collections.opsbook.webstack.plugins.module_utils.restore_names import MAX_DATABASE_BYTES, restore_names

ROOT = Path(__file__).resolve().parents[4]
RESTORE_ID = "20261205171500"
LONGEST = "j" + "_" * 10 + "x" * (MAX_DATABASE_BYTES - 11)  # the longest name that fits


def finder_query() -> str:
    """The query of roles/maintenance's "Find pre-restore databases" task, as the role runs it."""
    tasks = yaml.safe_load((ROOT / "roles/maintenance/tasks/database.yml").read_text())
    [task] = [t for t in tasks if t.get("name") == "MAINTENANCE | Find pre-restore databases"]
    return task["community.postgresql.postgresql_query"]["query"]


def test_the_limit_is_postgresqls_63_bytes_less_the_longest_suffix():
    assert MAX_DATABASE_BYTES == 63 - len("_pre_restore_") - len(RESTORE_ID) == 36
    names = restore_names(LONGEST, RESTORE_ID)
    assert names["problem"] == ""
    assert names["old_database"] == f"{LONGEST}_pre_restore_{RESTORE_ID}" and len(names["old_database"]) == 63
    assert names["new_database"] == f"{LONGEST}_restore_{RESTORE_ID}"


@pytest.mark.parametrize(
    ("database", "restore_id", "problem"),
    [
        # 41 characters passed the old check; PostgreSQL cut the kept database's name to 63
        # bytes, dropping the last five digits of its time (two restores the same day and
        # ten-hour band collided).
        ("a" * 41, RESTORE_ID, "restore_database ('" + "a" * 41 + "', app_db_name by default) is 41 bytes"),
        (LONGEST + "y", RESTORE_ID, f"at most {MAX_DATABASE_BYTES} fit"),
        ("Journal", RESTORE_ID, "restore_database ('Journal', app_db_name by default) must be"),
        ("journal", "2026120517", "restore_id ('2026120517') must be the UTC time as 14 digits"),
    ],
)
def test_a_name_that_would_not_fit_is_refused_naming_the_variable(database, restore_id, problem):
    names = restore_names(database, restore_id)
    assert problem in names["problem"], names["problem"]
    assert names["old_database"] == "" and names["new_database"] == ""


def test_the_filter_is_the_same_function():
    assert FilterModule().filters()["restore_names"]("journal", RESTORE_ID) == restore_names("journal", RESTORE_ID)


@pytest.mark.parametrize("database", ["journal", LONGEST])
def test_the_finder_lists_exactly_the_databases_a_restore_keeps(postgres_server, database):
    kept = [restore_names(database, rid)["old_database"] for rid in (RESTORE_ID, "20261205171501", "20201231235959")]
    others = [
        restore_names(database, RESTORE_ID)["new_database"],  # the restored copy before its swap
        f"{database}x_pre_restore_{RESTORE_ID}"[:63],  # another database's
        f"{database}_pre_restore_2026",  # not a restore's time
    ]
    created = []
    try:
        for name in kept + others:
            postgres_server.create_database(name)
            created.append(name)
        with postgres_server.connect() as conn:
            rows = conn.execute(finder_query(), {"db": database}).fetchall()
        assert [row[0] for row in rows] == sorted(kept)
        ages = {row[0]: row[2] for row in rows}
        assert ages[restore_names(database, "20201231235959")["old_database"]] >= 5 * 365
    finally:
        for name in created:
            postgres_server.drop_database(name)
