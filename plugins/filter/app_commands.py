# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The app_commands filters: the framework commands checked and completed, and the argv of one."""

from ansible.errors import AnsibleFilterError
from ansible_collections.opsbook.webstack.plugins.module_utils.app_commands import (
    CommandsError,
    argv_in_release,
    commands,
    is_django_migrate,
    workdir,
)

DOCUMENTATION = r"""
name: app_commands
short_description: The framework commands a deploy runs, checked and completed
version_added: 0.3.0
description:
  - Checks C(app_commands) and fills in each entry's defaults (C(run) once, C(when) before_switch,
    no C(environment), C(timeout) 0). A malformed entry fails, naming the variable, the entry and the field.
  - Unset (null), the Django steps the deploy ran before C(app_commands) existed - C(manage.py migrate
    --noinput) once, C(manage.py collectstatic --noinput) in the build. O(migrate) or O(collectstatic)
    false leaves out the entries of that name.
  - The companion filters C(app_commands_problems) (validate's list - the problem found, or none),
    C(app_command_argv) (the argv with a bare program taken from the release's virtualenv) and
    C(app_command_is_django_migrate).
  - C(app_workdir) - the directory the app's processes and commands run in, the release (input) or
    C(app_workdir) inside it (argument, checked by the validate role); the units, the framework
    commands and the deploy's Django migration steps take it from here.
options:
  _input:
    description: The value of C(app_commands), or null for the default.
    type: list
    elements: dict
  migrate:
    description: C(deploy_migrate) - the default list holds migrate.
    type: bool
    default: true
  collectstatic:
    description: C(deploy_collectstatic) - the default list holds collectstatic.
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: The commands this deploy runs
  ansible.builtin.set_fact:
    commands: "{{ app_commands | default(none) | opsbook.webstack.app_commands(deploy_migrate, deploy_collectstatic) }}"

- name: Where the release's processes run (/srv/journal/current/ca with app_workdir ca)
  ansible.builtin.debug:
    msg: "{{ (app_root ~ '/current') | opsbook.webstack.app_workdir(app_workdir | default('')) }}"
"""

RETURN = r"""
_value:
  description: Each entry with C(name), C(argv), C(run), C(when), C(environment) and C(timeout).
  type: list
  elements: dict
"""


def app_commands(value, migrate=True, collectstatic=True, variable="app_commands"):
    try:
        return commands(value, bool(migrate), bool(collectstatic), variable)
    except CommandsError as exc:
        raise AnsibleFilterError(str(exc)) from None


def app_commands_problems(value, variable="app_commands"):
    """[] when the value is well formed, else the one problem found (for validate's list)."""
    try:
        commands(value, True, True, variable)
    except CommandsError as exc:
        return [f"{exc}."]
    return []


def app_command_argv(item, release_dir):
    return argv_in_release(dict(item), str(release_dir))


def app_command_is_django_migrate(item):
    return is_django_migrate(dict(item))


def app_workdir(release_dir, app_workdir=""):
    """<release_dir>/<app_workdir>, or release_dir when app_workdir is empty."""
    return workdir(str(release_dir), "" if app_workdir is None else str(app_workdir))


class FilterModule:
    def filters(self):
        return {
            "app_commands": app_commands,
            "app_commands_problems": app_commands_problems,
            "app_command_argv": app_command_argv,
            "app_command_is_django_migrate": app_command_is_django_migrate,
            "app_workdir": app_workdir,
        }
