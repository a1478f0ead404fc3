# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pitr_summary filter: pgBackRest's `info --output=json` for one stanza, summed up (a pure function)."""

from __future__ import annotations

DOCUMENTATION = r"""
name: pitr_summary
short_description: pgBackRest's info (JSON) for one stanza, summed up
version_added: 0.3.0
description:
  - A pure function over the parsed output of C(pgbackrest --stanza=<s> info --output=json).
  - Returns the stanza's status, its backups oldest first (label, type, start, stop, sizes), the
    newest backup's age and the archived WAL range. A stanza the output lacks has status code -1.
  - P(opsbook.webstack.pitr_target_refusal#filter) checks a restore target time against the result.
options:
  _input:
    description: The parsed JSON (a list of stanzas).
    type: list
    required: true
  stanza:
    description: The stanza to read.
    type: str
    required: true
  now:
    description: The current time, seconds since the epoch (for the newest backup's age).
    type: float
    required: true
"""

EXAMPLES = r"""
- name: Sum up the stanza
  ansible.builtin.set_fact:
    pitr: "{{ info.stdout | from_json | opsbook.webstack.pitr_summary('journal', now().timestamp()) }}"
"""

RETURN = r"""
_value:
  description: >-
    status_code (0 ok, as pgBackRest numbers them; -1 when the stanza is absent), status_message,
    backups (list of label, type, start, stop, size, repo_size), oldest_restorable (stop time of the
    oldest backup, epoch, or null), last_backup_age_seconds (or null), archive_min, archive_max.
  type: dict
"""


def pitr_summary(info, stanza, now):
    found = next((s for s in (info or []) if isinstance(s, dict) and s.get("name") == stanza), None)
    if found is None:
        return {
            "status_code": -1,
            "status_message": f"no stanza {stanza!r} in pgBackRest's info",
            "backups": [],
            "oldest_restorable": None,
            "last_backup_age_seconds": None,
            "archive_min": None,
            "archive_max": None,
        }
    backups = []
    for b in found.get("backup") or []:
        stamp = b.get("timestamp") or {}
        info_ = b.get("info") or {}
        backups.append(
            {
                "label": b.get("label"),
                "type": b.get("type"),
                "start": stamp.get("start"),
                "stop": stamp.get("stop"),
                "size": info_.get("size"),
                "repo_size": (info_.get("repository") or {}).get("delta"),
            }
        )
    backups.sort(key=lambda b: b["stop"] or 0)
    archives = found.get("archive") or []
    status = found.get("status") or {}
    return {
        "status_code": status.get("code", 99),
        "status_message": status.get("message", "unknown"),
        "backups": backups,
        "oldest_restorable": backups[0]["stop"] if backups else None,
        "last_backup_age_seconds": round(float(now) - backups[-1]["stop"]) if backups else None,
        "archive_min": min((a.get("min") for a in archives if a.get("min")), default=None),
        "archive_max": max((a.get("max") for a in archives if a.get("max")), default=None),
    }


class FilterModule:
    def filters(self):
        return {"pitr_summary": pitr_summary}
