# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Backup retention planning: a pure function from (backups, policy, now) to a plan.

Rules combine as a union (a backup is kept when any rule keeps it):

- keep_last N: the N newest verified backups;
- keep_days D: every verified backup younger than D days;
- keep_daily / keep_weekly / keep_monthly N (grandfather-father-son): for each of the N
  newest days (ISO weeks, months) that have a verified backup, the newest one of it.

Whatever the rules say, the newest verified backup is always kept. Unverified backups
(failed or unfinished) never count toward a rule and are always deleted. A policy with no
rule set keeps everything: rotation must be asked for.
"""

from __future__ import annotations

import datetime as dt

# Modules run on Python 3.9 targets: datetime.UTC is 3.11+.
UTC = dt.timezone.utc  # noqa: UP017

RULES = ("keep_last", "keep_days", "keep_daily", "keep_weekly", "keep_monthly")


class RetentionError(ValueError):
    """Bad input, with a message naming the setting or backup at fault."""


class UnsafeNameError(ValueError):
    """A manifest names a file that is not a plain name inside its backup directory."""


def check_name(name, backup_id, where: str) -> str:
    """name, when it is a plain file name inside where (no '/', not '.' or '..', no NUL); else UnsafeNameError.

    The one check for every name read from a manifest before anything acts on it: the local
    rotation (rotation.py), the copy planner and the copies' retention (backup_copy.py)."""
    text = str(name)
    if not text or "/" in text or "\0" in text or text in (".", ".."):
        raise UnsafeNameError(f"the manifest of backup {backup_id} names {text!r}, which is not a file of {where}")
    return text


def data_files(manifest: dict, where: str) -> list[str]:
    """The data files of one backup, checked with check_name: its dump, then the archives its manifest lists."""
    names = [manifest.get("file")] + [
        entry.get("file") if isinstance(entry, dict) else entry for entry in (manifest.get("files") or {}).values()
    ]
    return [check_name(name, manifest.get("id"), where) for name in names if name]


def check_policy(policy: dict) -> dict[str, int]:
    """The policy's rules as whole numbers (0 when unset); RetentionError names a bad setting."""
    unknown = sorted(set(policy or {}) - set(RULES))
    if unknown:
        raise RetentionError(f"unknown retention setting(s) {', '.join(unknown)}; known: {', '.join(RULES)}")
    clean = {}
    for name in RULES:
        value = (policy or {}).get(name)
        if value in (None, ""):
            clean[name] = 0
            continue
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise RetentionError(f"{name} must be a whole number of backups or days, got {value!r}") from None
        if number < 0 or isinstance(value, bool):
            raise RetentionError(f"{name} must be 0 or more, got {value!r}")
        clean[name] = number
    return clean


def _zulu(text: str) -> str:
    """A trailing Z as +00:00: fromisoformat reads Z from Python 3.11 only (modules run on 3.9 targets)."""
    return text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text


def _when(item: dict) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(_zulu(str(item["time"])))
    except (KeyError, ValueError):
        raise RetentionError(
            f"backup {item.get('id', '?')} has no valid ISO 8601 time (got {item.get('time')!r})"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _periods(items: list[tuple[dt.datetime, dict]], key, count: int, label: str, reasons: dict) -> None:
    seen = []
    for when, item in items:  # newest first
        period = key(when)
        if period in seen:
            continue
        if len(seen) == count:
            break
        seen.append(period)
        reasons.setdefault(item["id"], []).append(f"newest of its {label} ({period})")


def plan(backups: list[dict], policy: dict, now: dt.datetime | str | None = None) -> dict:
    """Return {"keep": [ids newest first], "delete": [ids newest first], "reasons": {id: [..]}}."""
    rules = check_policy(policy)
    if isinstance(now, str):
        now = dt.datetime.fromisoformat(_zulu(now))
    now = now or dt.datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    for item in backups:
        if not item.get("id"):
            raise RetentionError(f"a backup entry has no id: {item!r}")
    dated = sorted(((_when(b), b) for b in backups), key=lambda pair: pair[0], reverse=True)
    verified = [(when, b) for when, b in dated if b.get("verified")]
    reasons: dict[str, list[str]] = {}
    if not any(rules.values()):
        for _time, item in verified:
            reasons.setdefault(item["id"], []).append("no retention rule is set")
    for _time, item in verified[: rules["keep_last"]]:
        reasons.setdefault(item["id"], []).append(f"one of the last {rules['keep_last']}")
    if rules["keep_days"]:
        limit = now - dt.timedelta(days=rules["keep_days"])
        for when, item in verified:
            if when >= limit:
                reasons.setdefault(item["id"], []).append(f"younger than {rules['keep_days']} days")
    _periods(verified, lambda w: w.date().isoformat(), rules["keep_daily"], "day", reasons)
    _periods(verified, lambda w: "{}-W{:02d}".format(*w.isocalendar()[:2]), rules["keep_weekly"], "week", reasons)
    _periods(verified, lambda w: f"{w.year}-{w.month:02d}", rules["keep_monthly"], "month", reasons)
    if verified:
        reasons.setdefault(verified[0][1]["id"], []).append("the newest verified backup is never deleted")
    keep = [b["id"] for _time, b in dated if b["id"] in reasons]
    delete = [b["id"] for _time, b in dated if b["id"] not in reasons]
    for _time, item in dated:
        if item["id"] in delete:
            reasons[item["id"]] = ["not verified" if not item.get("verified") else "no rule keeps it"]
    return {"keep": keep, "delete": delete, "reasons": reasons}
