# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pitr_target_refusal filter: why pgBackRest cannot restore to a target time ('' when it can)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

DOCUMENTATION = r"""
name: pitr_target_refusal
short_description: Why a restore target time is refused, or an empty string when it is usable
version_added: 0.3.0
description:
  - A pure function. The target is C(latest) (the end of the archived WAL) or a date and time with
    its time zone (C(2026-12-06 03:40:00+00), C(2026-12-06T03:40:00Z), C(2026-12-06 03:40 UTC)); a
    time without a zone is refused, as PostgreSQL would read it in the server's zone.
  - Refused too - a stanza without a backup, a time before the end of the oldest backup kept (no
    backup can be rolled forward to it) and a time in the future.
  - Every message names C(restore_target_time), the restore role's variable.
options:
  _input:
    description: The target time.
    type: str
    required: true
  summary:
    description: The stanza's summary from P(opsbook.webstack.pitr_summary#filter).
    type: dict
    required: true
  now:
    description: The current time, seconds since the epoch.
    type: float
    required: true
"""

EXAMPLES = r"""
- name: Refuse a bad target before anything changes
  ansible.builtin.assert:
    that: restore_target_time | opsbook.webstack.pitr_target_refusal(pitr, now().timestamp()) == ''
"""

RETURN = r"""
_value:
  description: "'' when the target is usable, else why not (naming restore_target_time)."
  type: str
"""

# "2026-12-06 03:40:00+00", "2026-12-06T03:40:00.25Z", "2026-12-06 03:40 UTC", "... +05:30".
_TIME = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})[ T](?P<time>\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?)"
    r"\s*(?P<zone>Z|UTC|[+-]\d{2}(?::?\d{2})?)$"
)


def parse_target(text) -> datetime:
    """The target as an aware datetime; ValueError naming what was expected."""
    match = _TIME.match(str(text or "").strip())
    if not match:
        raise ValueError(
            f"restore_target_time ({text!r}) must be a date and time with its time zone, like "
            "'2026-12-06 03:40:00+00' or '2026-12-06T03:40:00Z' (a time without a zone is ambiguous)"
        )
    zone = match["zone"]
    if zone in ("Z", "UTC"):
        zone = "+00:00"
    elif len(zone) == 3:
        zone += ":00"
    elif ":" not in zone:
        zone = zone[:3] + ":" + zone[3:]
    clock = match["time"] if match["time"].count(":") == 2 else match["time"] + ":00"
    try:
        return datetime.fromisoformat(f"{match['date']}T{clock}{zone}")
    except ValueError as exc:
        raise ValueError(f"restore_target_time ({text!r}) is not a valid time: {exc}") from None


def pitr_target_refusal(target, summary, now):
    """'' when pgBackRest can restore to the target; else why not, naming restore_target_time."""
    if str(target).strip() == "latest":
        return "" if (summary or {}).get("backups") else "restore_target_time (latest): the stanza has no backup yet"
    try:
        when = parse_target(target).timestamp()
    except ValueError as exc:
        return str(exc)
    summary = summary or {}
    if summary.get("status_code") not in (0, None) and not summary.get("backups"):
        return (
            f"restore_target_time ({target}): the pgBackRest stanza has no backup to restore from "
            f"({summary.get('status_message')}); run playbooks/backup.yml with backup_pitr=true first"
        )
    oldest = summary.get("oldest_restorable")
    if oldest is None:
        return f"restore_target_time ({target}): the stanza has no backup yet; run playbooks/backup.yml first"
    if when < oldest:
        first = datetime.fromtimestamp(oldest, UTC).isoformat(sep=" ")
        return (
            f"restore_target_time ({target}) is before the end of the oldest backup kept ({first}): "
            "no backup can be rolled forward to it"
        )
    if when > float(now):
        return f"restore_target_time ({target}) is in the future"
    return ""


class FilterModule:
    def filters(self):
        return {"pitr_target_refusal": pitr_target_refusal}
