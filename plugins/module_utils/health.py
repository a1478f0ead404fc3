# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Warning and critical levels for maintenance and health reports, and the one rule of "healthy"
(judge, at the end: every gate of the collection uses it). Pure functions.

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
import json
import os

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


# --------------------------------------------------------------------------- what "healthy" means
# One rule for every gate: the deploy (deploy_activate's health step, on each host and through
# the load balancer), blue-green (the idle slot's check, the confirmation through the load
# balancer), the restore's health gate and health.yml's endpoint checks. Parameterised by
# app_health_expect (what a healthy answer is) and app_version_source (where the served release
# is read, for the gates that check it).
#
# app_health_expect: {status: 200 | [200, ...], json_path: "a.b", json_value: <value>,
#                     components: true}
#   status      the HTTP status codes that pass (default 200);
#   json_path   a dotted path into the JSON body (list items by index), with json_value the value
#               it must hold (compared as equal, or as text when json_value is a string);
#   components  opsbook's shape (default true): when the body is a JSON object with a
#               `components` mapping, every value of it must be "ok". An answer without one
#               passes this part, so a plain "200 OK" endpoint is healthy by default.
# app_version_source: json:<dotted path> (default json:version) | header:<Name> | file:<path> | none.
#   file: a file in the release the host's web process runs from (its working directory; every
#   release has opsbook's RELEASE), read by the host's own gate (deploy_activate with a web unit);
#   gates that only see HTTP (through the load balancer, restore, health.yml) then check health only.
#   none: the app reports no version; the gates then check health only, and say so.

EXPECT_FIELDS = ("status", "json_path", "json_value", "components")
DEFAULT_EXPECT = {"status": [200], "json_path": "", "json_value": None, "components": True}
DEFAULT_VERSION_SOURCE = "json:version"
_MISSING = object()


def health_expect(expect, variable: str = "app_health_expect") -> dict:
    """app_health_expect checked, its defaults filled in; HealthError names the variable and the field."""
    if expect is None or expect == {}:
        return copy.deepcopy(DEFAULT_EXPECT)
    if not isinstance(expect, dict):
        raise HealthError(f"{variable}: expected a mapping ({', '.join(EXPECT_FIELDS)}), got {expect!r}")
    unknown = sorted(set(expect) - set(EXPECT_FIELDS))
    if unknown:
        raise HealthError(
            f"{variable}: unknown field(s) {', '.join(map(str, unknown))}; known: {', '.join(EXPECT_FIELDS)}"
        )
    out = copy.deepcopy(DEFAULT_EXPECT)
    status = expect.get("status", 200)
    codes = status if isinstance(status, list) else [status]
    if not codes or not all(isinstance(c, int) and not isinstance(c, bool) and 100 <= c <= 599 for c in codes):
        raise HealthError(
            f"{variable}.status: expected an HTTP status code or a list of them (100-599), got {status!r}"
        )
    out["status"] = list(codes)
    path = expect.get("json_path") or ""
    if not isinstance(path, str) or (path and any(part == "" for part in path.split("."))):
        raise HealthError(
            f"{variable}.json_path: expected a dotted path such as status or checks.database, got {path!r}"
        )
    if path and "json_value" not in expect:
        raise HealthError(
            f"{variable}.json_value: json_path {path} is set, so json_value (the value it must hold) is required"
        )
    if not path and "json_value" in expect:
        raise HealthError(f"{variable}.json_path: json_value is set, so json_path (where to read it) is required")
    out["json_path"] = path
    out["json_value"] = expect.get("json_value")
    components = expect.get("components", True)
    if not isinstance(components, bool):
        raise HealthError(f"{variable}.components: expected true or false, got {components!r}")
    out["components"] = components
    return out


def version_source(source, variable: str = "app_version_source") -> tuple[str, str]:
    """(kind, name): ('json', 'version'), ('header', 'X-Release') or ('none', '')."""
    if source is None or source == "":
        source = DEFAULT_VERSION_SOURCE
    if source == "none":
        return ("none", "")
    if isinstance(source, str):
        kind, _sep, name = source.partition(":")
        if kind == "json" and name and all(name.split(".")):
            return ("json", name)
        if kind == "header" and name and all(c.isalnum() or c in "-_" for c in name):
            return ("header", name)
        if kind == "file" and name and not name.startswith("/") and ".." not in name.split("/"):
            return ("file", name)
    raise HealthError(
        f"{variable}: expected json:<dotted path> (the default, json:version), header:<Name>, file:<path in the"
        f" release> or none, got {source!r}"
    )


def rule_problem(
    expect, source, expect_variable: str = "app_health_expect", source_variable: str = "app_version_source"
):
    """Why app_health_expect or app_version_source (under the names a caller gives them) is malformed, or None."""
    try:
        health_expect(expect, expect_variable)
        version_source(source, source_variable)
    except HealthError as exc:
        return str(exc)
    return None


def json_at(data, path: str):
    """The value at a dotted path in parsed JSON, or _MISSING."""
    here = data
    for part in path.split("."):
        if isinstance(here, dict) and part in here:
            here = here[part]
        elif isinstance(here, list) and part.isdigit() and int(part) < len(here):
            here = here[int(part)]
        else:
            return _MISSING
    return here


def _header(headers, name: str):
    """A response header by name, case-insensitively; also as ansible's uri returns them (x_release)."""
    wanted = {name.lower(), name.lower().replace("-", "_")}
    for key, value in (headers or {}).items():
        if str(key).lower() in wanted:
            return value
    return None


def _same(found, expected) -> bool:
    if found == expected and type(found) is type(expected):
        return True
    return isinstance(expected, str) and not isinstance(found, (dict, list)) and str(found) == expected


def judge(status, body, headers=None, expect=None, source=None, versions=None, served=_MISSING) -> dict:
    """One answer of a health endpoint judged by the rule.

    status: the HTTP status (None: no answer); body: bytes, text or already parsed JSON;
    headers: a mapping. versions: the releases that may be served (empty or None: the version is
    not checked). served: with a file: source, what the file held (None: not there); not given, a
    file: source is not checked (an HTTP-only gate). Returns ok (healthy and, when checked, the
    right version), healthy, status, version (what the source gave, or None), version_checked,
    components (opsbook's shape, {} otherwise), problems (why not ok) and what (one line for messages).
    """
    rule = health_expect(expect)
    kind, name = version_source(source)
    data = body
    if isinstance(body, (bytes, bytearray)):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str):
        try:
            data = json.loads(body) if body.strip() else None
        except ValueError:
            data = None
    problems = []
    if status is None:
        problems.append("no answer")
    elif status not in rule["status"]:
        problems.append(f"HTTP {status}, expected {' or '.join(map(str, rule['status']))}")
    components = {}
    if rule["components"] and isinstance(data, dict) and isinstance(data.get("components"), dict):
        components = data["components"]
        bad = sorted(k for k, v in components.items() if v != "ok")
        if bad:
            problems.append(f"components not ok: {', '.join(bad)}")
    if rule["json_path"]:
        found = json_at(data, rule["json_path"]) if data is not None else _MISSING
        if found is _MISSING:
            problems.append(f"no JSON {rule['json_path']} (expected {rule['json_value']!r})")
        elif not _same(found, rule["json_value"]):
            problems.append(f"JSON {rule['json_path']} is {found!r}, expected {rule['json_value']!r}")
    healthy = not problems
    version = None
    if kind == "json" and data is not None:
        found = json_at(data, name)
        version = None if found is _MISSING or isinstance(found, (dict, list)) else str(found)
    elif kind == "header":
        found = _header(headers, name)
        version = None if found is None else str(found)
    elif kind == "file" and served is not _MISSING:
        version = served
    wanted = [v for v in (versions or []) if v]
    readable = kind in ("json", "header") or (kind == "file" and served is not _MISSING)
    checked = readable and bool(wanted)
    if checked and version not in wanted:
        where = {"json": f"JSON {name}", "header": f"header {name}", "file": f"file {name} of the served release"}[kind]
        problems.append(f"{where} is {version or 'missing'}, expected {' or '.join(wanted)}")
    what = f"HTTP {status if status is not None else 'none'}"
    if kind != "none" and (kind != "file" or served is not _MISSING):
        what += f", version {version or 'unknown'}"
    what += "; " + ("; ".join(problems) if problems else "healthy")
    return {
        "ok": not problems,
        "healthy": healthy,
        "status": status,
        "version": version,
        "version_checked": checked,
        "components": components,
        "problems": problems,
        "what": what,
    }


def version_statement(source) -> str:
    """What the served-version gate checks, for the run's output."""
    kind, name = version_source(source)
    if kind == "none":
        return (
            "app_version_source is none: the app reports no version, so the gates check health only"
            " (not which release is served)"
        )
    if kind == "file":
        return (
            f"the served release is read on each app host from {name} in the release its web process runs;"
            " gates through HTTP alone (the load balancer, restore, health.yml) check health only"
        )
    where = f"the JSON field {name}" if kind == "json" else f"the response header {name}"
    return f"the served release is read from {where} of the health answer"


def _listening_inodes(port: int) -> set[str]:
    """Socket inodes listening on this TCP port (any address), from /proc/net/tcp and tcp6."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="ascii") as rows:
                next(rows, None)
                for row in rows:
                    fields = row.split()
                    if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                        inodes.add(fields[9])
        except OSError:
            continue
    return inodes


def served_release_file(port: int, path: str):
    """What `path` holds in the directory the processes serving `port` run from (the web process's
    working directory, which resolves `current` to the release it loaded); None when none has it.
    PID 1 (systemd holding an activated socket) is left out."""
    wanted = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    for pid in sorted((p for p in os.listdir("/proc") if p.isdigit() and p != "1"), key=int):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
            if not any(os.readlink(f"/proc/{pid}/fd/{fd}") in wanted for fd in fds):
                continue
            with open(os.path.join(f"/proc/{pid}/cwd", path), encoding="utf-8") as found:
                return found.read().strip()
        except OSError:
            continue
    return None
