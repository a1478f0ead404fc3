# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The names a restore gives databases (pure functions).

A restore loads the backup into <database>_restore_<id>, then renames the live database to
<database>_pre_restore_<id> and keeps it; <id> is the UTC time as 14 digits (YYYYMMDDHHMMSS).
PostgreSQL cuts identifiers to 63 bytes without an error, so a longer name would lose the end
of its time (two restores of the same day collide) and no longer match the maintenance role's
finder of pre-restore databases (roles/maintenance/tasks/database.yml: <database>_pre_restore_
followed by exactly 14 digits). The database's name is therefore limited to what fits.
"""

from __future__ import annotations

import re

PG_NAME_BYTES = 63  # NAMEDATALEN - 1
RESTORE_ID_DIGITS = 14  # %Y%m%d%H%M%S
NEW_INFIX = "_restore_"
OLD_INFIX = "_pre_restore_"
MAX_DATABASE_BYTES = PG_NAME_BYTES - len(OLD_INFIX) - RESTORE_ID_DIGITS  # 36
_DATABASE = re.compile(r"[a-z_][a-z0-9_]*")
_RESTORE_ID = re.compile(rf"[0-9]{{{RESTORE_ID_DIGITS}}}")


def restore_names(database, restore_id) -> dict:
    """{"new_database", "old_database", "problem"}: the names, or "" and what is wrong (naming the variable)."""
    database, restore_id = str(database), str(restore_id)
    problems = []
    if not _DATABASE.fullmatch(database):
        problems.append(
            f"restore_database ({database!r}, app_db_name by default) must be lower-case letters, digits and '_', "
            "starting with a letter or '_'"
        )
    size = len(database.encode("utf-8"))
    if size > MAX_DATABASE_BYTES:
        problems.append(
            f"restore_database ({database!r}, app_db_name by default) is {size} bytes; at most {MAX_DATABASE_BYTES} "
            f"fit in PostgreSQL's {PG_NAME_BYTES}-byte names once {OLD_INFIX}<{RESTORE_ID_DIGITS}-digit time> is added "
            "(a longer name would be cut, and two restores could get the same name)"
        )
    if not _RESTORE_ID.fullmatch(restore_id):
        problems.append(
            f"restore_id ({restore_id!r}) must be the UTC time as {RESTORE_ID_DIGITS} digits, YYYYMMDDHHMMSS"
        )
    if problems:
        return {"new_database": "", "old_database": "", "problem": "; ".join(problems)}
    return {
        "new_database": f"{database}{NEW_INFIX}{restore_id}",
        "old_database": f"{database}{OLD_INFIX}{restore_id}",
        "problem": "",
    }
