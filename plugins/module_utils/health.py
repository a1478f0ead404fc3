# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Warning and critical levels for maintenance and health reports: a pure function.

A measurement is a dict: host, check, subject, value (a number, or None when it could not be
measured), unit, detail (free text), and metric, the name of its threshold. A threshold is
{warning: N, critical: M}; most metrics are bad when high (disk %, queue depth), a few when
low (days until a certificate expires: `below` metrics). A measurement with no metric, or
whose metric has no threshold, is information only (level ok). A value of None is critical
when the measurement says `required: true` (the service did not answer), else unknown.

The defaults are the seeds' alert-threshold tables: disk and memory 80/90 %, connections 80 %
of max_connections (critical 90 %), queries over 10 s (critical 60 s), queue depth 100/1000,
certificates under 30/7 days. The rest are this project's: dead tuples 20/50 % of a table's
rows, estimated bloat 30/60 % of a relation's size, error lines in logs 1/50, unhealthy
services and endpoints critical (a 0/1 value, warning 1 and critical 1).
"""

from __future__ import annotations

import copy

LEVELS = ("ok", "unknown", "warning", "critical")

DEFAULT_THRESHOLDS: dict[str, dict[str, float]] = {
    "disk_percent": {"warning": 80, "critical": 90},
    "memory_percent": {"warning": 80, "critical": 90},
    "connections_percent": {"warning": 80, "critical": 90},
    "query_seconds": {"warning": 10, "critical": 60},
    "queue_depth": {"warning": 100, "critical": 1000},
    "certificate_days": {"warning": 30, "critical": 7},
    "dead_tuples_percent": {"warning": 20, "critical": 50},
    "bloat_percent": {"warning": 30, "critical": 60},
    "error_lines": {"warning": 1, "critical": 50},
    "failed": {"warning": 1, "critical": 1},
    # Query and cache insight (maintenance.yml): waits like query_seconds; a statement's mean
    # time like seed 000's response time (1 s / 5 s); Redis memory like host memory; the rest ours.
    "lock_wait_seconds": {"warning": 10, "critical": 60},
    "statement_mean_ms": {"warning": 1000, "critical": 5000},
    "redis_memory_percent": {"warning": 80, "critical": 90},
    "redis_fragmentation_ratio": {"warning": 1.5, "critical": 2.0},
    "redis_latency_ms": {"warning": 10, "critical": 100},
    "cache_hit_percent": {"warning": 80, "critical": 50},
    # A scheduled job (opsbook.webstack.schedule) whose last run failed, or whose timer is not
    # waiting: 0 or 1, a warning (the next run may pass; health.yml's own checks say what broke).
    "schedule_failed": {"warning": 1, "critical": 2},
    # The newest pgBackRest base backup (backup_pitr): a daily full or diff is a day old at most;
    # older means WAL replay grows and a schedule stopped.
    "pitr_backup_age_hours": {"warning": 26, "critical": 50},
}

# Metrics that are bad when low.
BELOW = frozenset({"certificate_days", "cache_hit_percent"})


class HealthError(ValueError):
    """Bad input, with a message naming the setting or measurement at fault."""


def thresholds(overrides: dict | None) -> dict[str, dict[str, float]]:
    """The defaults with the user's overrides merged in, checked: numbers, warning before critical."""
    merged = copy.deepcopy(DEFAULT_THRESHOLDS)
    for metric, levels in (overrides or {}).items():
        if not isinstance(levels, dict):
            raise HealthError(f"threshold {metric}: expected a mapping with warning and/or critical, got {levels!r}")
        unknown = sorted(set(levels) - {"warning", "critical"})
        if unknown:
            raise HealthError(f"threshold {metric}: unknown key(s) {', '.join(unknown)}; known: warning, critical")
        entry = merged.setdefault(metric, {})
        for key, value in levels.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise HealthError(f"threshold {metric}.{key}: expected a number, got {value!r}")
            entry[key] = value
        if "warning" not in entry or "critical" not in entry:
            raise HealthError(f"threshold {metric}: a new metric needs both warning and critical")
    for metric, entry in merged.items():
        low, high = (entry["critical"], entry["warning"]) if metric in BELOW else (entry["warning"], entry["critical"])
        if low > high:
            order = "above" if metric in BELOW else "at most"
            raise HealthError(
                f"threshold {metric}: warning ({entry['warning']}) must be {order} critical ({entry['critical']})"
            )
    return merged


def level(metric: str | None, value, limits: dict[str, dict[str, float]], required: bool = False) -> str:
    if value is None:
        return "critical" if required else "unknown"
    if not metric or metric not in limits:
        return "ok"
    entry = limits[metric]
    if metric in BELOW:
        if value <= entry["critical"]:
            return "critical"
        return "warning" if value <= entry["warning"] else "ok"
    if value >= entry["critical"]:
        return "critical"
    return "warning" if value >= entry["warning"] else "ok"


def assess(measurements: list[dict], overrides: dict | None = None) -> dict:
    """Each measurement with its level and the threshold it was judged by; counts; the worst level."""
    limits = thresholds(overrides)
    findings = []
    for index, item in enumerate(measurements or []):
        if not isinstance(item, dict) or "check" not in item:
            raise HealthError(f"measurement {index}: expected a mapping with at least 'check', got {item!r}")
        value = item.get("value")
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise HealthError(f"measurement {index} ({item['check']}): value {value!r} is not a number") from None
        metric = item.get("metric")
        found = dict(item, value=value)
        found["level"] = level(metric, value, limits, bool(item.get("required")))
        found["threshold"] = limits.get(metric) if metric else None
        findings.append(found)
    findings.sort(
        key=lambda f: (-LEVELS.index(f["level"]), str(f.get("host", "")), f["check"], str(f.get("subject", "")))
    )
    counts = {name: sum(1 for f in findings if f["level"] == name) for name in LEVELS}
    worst = max((f["level"] for f in findings), key=LEVELS.index, default="ok")
    return {"findings": findings, "counts": counts, "worst": worst, "thresholds": limits}


def measure(rows, host, check, metric, value_key, unit, subject_key, detail_key=None) -> list[dict]:
    """Rows (dicts, e.g. a query's result) turned into measurements of one check."""
    out = []
    for index, row in enumerate(rows or []):
        if not isinstance(row, dict):
            raise HealthError(f"{check} row {index}: expected a mapping, got {row!r}")
        for key in (value_key, subject_key):
            if key not in row:
                raise HealthError(f"{check} row {index}: no '{key}' in {sorted(row)}")
        out.append(
            {
                "host": host,
                "check": check,
                "subject": row[subject_key],
                "metric": metric,
                "value": row[value_key],
                "unit": unit,
                "detail": row.get(detail_key, "") if detail_key else "",
            }
        )
    return out
