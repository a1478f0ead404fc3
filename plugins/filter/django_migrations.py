# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that read Django's migration commands: the per-app state (``showmigrations --list``),
the reversals that bring a database back to a recorded state, and a ``migrate --plan``."""

import re

DOCUMENTATION = r"""
name: django_migrations
short_description: Read Django's migration commands (per-app state, reversals, a migrate --plan)
version_added: 0.2.0
description:
  - A pure function over the text a Django migration command prints; O(read) says which.
  - C(state) reads C(manage.py showmigrations --list) and gives, for each app with migrations, the last applied
    one (C([X]); C([-]), a partly applied squashed migration, counts as not applied) in the order Django
    lists them, or C(zero) when none is applied. Apps printed as C((no migrations)) are left out.
  - C(reversals) reads the same listing and a recorded state (O(recorded)) and gives the C(migrate <app> <name>)
    calls that undo what was applied after it, and the recorded migrations the code does not know.
  - C(plan) reads C(manage.py migrate <app> <name> --plan) and gives the planned migrations, and the operations
    Django marks C(IRREVERSIBLE) (a RunPython without reverse_code, a RunSQL without reverse_sql).
options:
  _input:
    description: The command's standard output.
    type: str
    required: true
  read:
    description: What the text is and what to return.
    type: str
    choices: [state, reversals, plan]
    required: true
  recorded:
    description:
      - With O(read=reversals), the recorded state (app to migration name or C(zero)).
      - An app missing from it counts as C(zero).
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: The state to go back to
  ansible.builtin.set_fact:
    migration_state: "{{ showmigrations.stdout | opsbook.webstack.django_migrations('state') }}"

- name: The reversals back to a recorded state
  ansible.builtin.set_fact:
    reversals: "{{ showmigrations.stdout | opsbook.webstack.django_migrations('reversals', recorded) }}"

- name: Read a plan
  ansible.builtin.set_fact:
    plan: "{{ planned.stdout | opsbook.webstack.django_migrations('plan') }}"
"""

RETURN = r"""
_value:
  description: >-
    state: a dict app -> migration name or C(zero).
    reversals: a dict with C(reversals) (a list of dicts C(app), C(target), C(call)
    (C(migrate <app> <target>)) and C(unapply), the applied migrations the call undoes as
    C(<app>.<name>), newest first) and C(problems) (texts: a recorded migration that the code
    does not know).
    plan: a dict with C(migrations) (the planned migrations in order), C(operations)
    (count) and C(irreversible) (a list of dicts C(migration), C(operation)).
  type: dict
"""

_APP = re.compile(r"^(\S+)\s*$")
_MIGRATION = re.compile(r"^\s+\[(?P<mark>[ X-])\]\s+(?P<name>\S+)")
_IRREVERSIBLE = " -> IRREVERSIBLE"


def _listing(text):
    """showmigrations --list as {app: [(name, applied), ...]} in Django's order."""
    apps = {}
    app = None
    for line in str(text).splitlines():
        if not line.strip():
            continue
        migration = _MIGRATION.match(line)
        if migration and app is not None:
            apps[app].append((migration.group("name"), migration.group("mark") == "X"))
        elif _APP.match(line) and not line.startswith((" ", "\t")):
            app = _APP.match(line).group(1)
            apps[app] = []
    return {name: migrations for name, migrations in apps.items() if migrations}


def _leaf(migrations):
    applied = [name for name, done in migrations if done]
    return applied[-1] if applied else "zero"


def django_migration_state(text):
    return {app: _leaf(migrations) for app, migrations in _listing(text).items()}


def django_migration_reversals(text, recorded):
    """The migrate <app> <target> calls that undo what was applied after `recorded` ({app: name|zero})."""
    reversals = []
    problems = []
    for app, migrations in _listing(text).items():
        names = [name for name, _done in migrations]
        target = (recorded or {}).get(app, "zero")
        if target != "zero" and target not in names:
            problems.append(f"{app}.{target} (recorded before the deploy) is not a migration of this release's code")
            continue
        keep = 0 if target == "zero" else names.index(target) + 1
        unapply = [f"{app}.{name}" for name, done in migrations[keep:] if done]
        if unapply:
            reversals.append(
                {"app": app, "target": target, "call": f"migrate {app} {target}", "unapply": unapply[::-1]}
            )
    return {"reversals": reversals, "problems": problems}


def django_migration_plan(text):
    """migrate ... --plan: the planned migrations and the operations Django marks IRREVERSIBLE."""
    migrations = []
    irreversible = []
    operations = 0
    for line in str(text).splitlines():
        if not line.strip() or line.strip() in ("Planned operations:", "No planned migration operations."):
            continue
        if not line.startswith((" ", "\t")):
            migrations.append(line.strip())
            continue
        operations += 1
        operation = line.strip()
        if operation.endswith(_IRREVERSIBLE) and migrations:
            irreversible.append({"migration": migrations[-1], "operation": operation[: -len(_IRREVERSIBLE)]})
    return {"migrations": migrations, "operations": operations, "irreversible": irreversible}


_READERS = {"state": django_migration_state, "reversals": django_migration_reversals, "plan": django_migration_plan}


def django_migrations(text, read, recorded=None):
    if read not in _READERS:
        raise ValueError(f"django_migrations: read must be one of {', '.join(_READERS)}, got {read!r}")
    return _READERS[read](text, recorded) if read == "reversals" else _READERS[read](text)


class FilterModule:
    def filters(self):
        return {"django_migrations": django_migrations}
