# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""app_commands: the framework commands a deploy runs (migrate, collectstatic, flask db upgrade, ...).

Each entry: name, argv (a list, run without a shell), run (once | per_host | build), when
(before_switch | after_switch), optional environment (non-secret names and values) and timeout
(seconds, 0 = none). `build` is once per build group, on the build host, into the release before
it ships (collectstatic's files become part of the release); it runs per host after the
migrations instead when the collected files cannot ship (the deploy role decides that).

Unset (None), the list is the Django default the deploy ran before app_commands existed:
migrate once, then collectstatic in the build, each switched off by deploy_migrate /
deploy_collectstatic as before. A pure function; the deploy role and validate call it through
the opsbook.webstack.app_commands filter.
"""

from __future__ import annotations

import re

RUNS = ("once", "per_host", "build")
WHENS = ("before_switch", "after_switch")
FIELDS = ("name", "argv", "run", "when", "environment", "timeout")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# One part of app_workdir: no leading dot (so no `..`), nothing systemd or a shell would split.
WORKDIR_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*$")


def _django(step: str, run: str) -> dict:
    """One of the Django steps the deploy ran before app_commands: manage.py <step> --noinput."""
    argv = ["python", "manage.py", step, "--noinput"]
    return {"name": step, "argv": argv, "run": run, "when": "before_switch", "environment": {}, "timeout": 0}


class CommandsError(ValueError):
    """A malformed entry, the message naming the variable, the entry and the field."""


def default_commands(migrate: bool = True, collectstatic: bool = True) -> list[dict]:
    """The Django steps as the deploy ran them before app_commands."""
    out = [_django("migrate", "once")] if migrate else []
    return out + ([_django("collectstatic", "build")] if collectstatic else [])


def _entry(index: int, item, variable: str) -> dict:
    where = f"{variable} entry {index}"
    if not isinstance(item, dict):
        raise CommandsError(f"{where}: expected a mapping with name, argv, run and when, got {item!r}")
    name = item.get("name")
    if isinstance(name, str) and name:
        where = f"{variable} entry {index} ({name})"
    unknown = sorted(set(item) - set(FIELDS))
    if unknown:
        raise CommandsError(f"{where}: unknown field(s) {', '.join(map(str, unknown))}; known: {', '.join(FIELDS)}")
    if not isinstance(name, str) or not NAME.match(name):
        raise CommandsError(f"{where}: field name must be a word of letters, digits, _ . - (got {name!r})")
    argv = item.get("argv")
    if isinstance(argv, str):
        raise CommandsError(
            f"{where}: field argv must be a list of strings (no shell), got the string {argv!r}; "
            f"write it as {argv.split()!r}"
        )
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) and a for a in argv):
        raise CommandsError(f"{where}: field argv must be a non-empty list of non-empty strings, got {argv!r}")
    if not argv[0].startswith("/") and "/" in argv[0]:
        raise CommandsError(
            f"{where}: field argv[0] {argv[0]!r} must be a program of the release's virtualenv (no /, e.g. python,"
            " flask) or an absolute path"
        )
    run = item.get("run", "once")
    if run not in RUNS:
        raise CommandsError(f"{where}: field run must be one of {', '.join(RUNS)}, got {run!r}")
    when = item.get("when", "before_switch")
    if when not in WHENS:
        raise CommandsError(f"{where}: field when must be one of {', '.join(WHENS)}, got {when!r}")
    if run == "build" and when != "before_switch":
        raise CommandsError(f"{where}: run build happens in the build, before the switch; when must be before_switch")
    environment = item.get("environment") or {}
    if not isinstance(environment, dict):
        raise CommandsError(f"{where}: field environment must be a mapping of names to values, got {environment!r}")
    for key, value in environment.items():
        if not isinstance(key, str) or not ENV_NAME.match(key):
            raise CommandsError(f"{where}: field environment has an invalid variable name {key!r}")
        if isinstance(value, (dict, list)) or value is None:
            raise CommandsError(f"{where}: field environment.{key} must be a string or a number")
    timeout = item.get("timeout", 0)
    if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 0:
        raise CommandsError(f"{where}: field timeout must be a whole number of seconds (0: none), got {timeout!r}")
    return {
        "name": name,
        "argv": list(argv),
        "run": run,
        "when": when,
        "environment": {k: str(v) for k, v in environment.items()},
        "timeout": timeout,
    }


def commands(value, migrate: bool = True, collectstatic: bool = True, variable: str = "app_commands") -> list[dict]:
    """The entries checked and completed (run once, when before_switch, no environment, no timeout)."""
    if value is None:
        return default_commands(migrate, collectstatic)
    if not isinstance(value, list):
        raise CommandsError(f"{variable}: expected a list of commands (name, argv, run, when), got {value!r}")
    out = [_entry(index, item, variable) for index, item in enumerate(value)]
    seen: set[str] = set()
    for index, item in enumerate(out):
        if item["name"] in seen:
            raise CommandsError(f"{variable} entry {index} ({item['name']}): field name repeats an earlier entry's")
        seen.add(item["name"])
    # deploy_migrate=false / deploy_collectstatic=false skip the entries of that name, as they
    # skipped the Django steps before app_commands.
    skipped = ({"migrate"} if not migrate else set()) | ({"collectstatic"} if not collectstatic else set())
    return [item for item in out if item["name"] not in skipped]


def is_django_migrate(item: dict) -> bool:
    """A Django `manage.py migrate` (the deploy records the migration state before it; a rollback can reverse it)."""
    argv = item.get("argv") or []
    return len(argv) >= 3 and argv[1] == "manage.py" and argv[2] == "migrate"


def workdir_problems(value, variable: str = "app_workdir") -> list[str]:
    """[] when value is a relative path inside the release ('' is the release itself), else the problem."""
    if value is None or value == "":
        return []
    parts = value.split("/") if isinstance(value, str) else []
    if parts and parts[-1] == "":
        parts.pop()  # a trailing slash: ca/ is ca
    if parts and all(WORKDIR_PART.match(part) for part in parts):
        return []
    if isinstance(value, str) and value.startswith("/"):
        why = "it is absolute"
    elif ".." in parts:
        why = "it leaves the release (..)"
    else:
        why = "each part must be letters, digits, _ . + - without a leading dot, and no part empty"
    return [
        f"{variable} ({value!r}) must be a directory inside the release, relative to it, such as ca or"
        f" src/project (where the app's processes and app_commands run; empty: the release itself): {why}."
    ]


def workdir(release_dir: str, app_workdir: str | None = "") -> str:
    """The directory the app's processes and commands run in: the release, or app_workdir inside it."""
    sub = (app_workdir or "").strip("/")
    return f"{release_dir}/{sub}" if sub else release_dir


def argv_in_release(item: dict, release_dir: str) -> list[str]:
    """argv with a bare program name taken from the release's virtualenv (python -> <release>/venv/bin/python)."""
    argv = list(item["argv"])
    if "/" not in argv[0]:
        argv[0] = f"{release_dir}/venv/bin/{argv[0]}"
    return argv
