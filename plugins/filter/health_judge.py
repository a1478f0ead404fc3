# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The health_judge filter: one answer of the app's health endpoint judged by the collection's one rule."""

from ansible.errors import AnsibleFilterError
from ansible_collections.opsbook.webstack.plugins.module_utils.health import (
    HealthError,
    health_expect,
    judge,
    version_source,
    version_statement,
)

DOCUMENTATION = r"""
name: health_judge
short_description: Judge an answer of the app's health endpoint by the one rule of "healthy"
version_added: 0.3.0
description:
  - The rule of C(module_utils/health.py) (C(judge)), which the deploy's gates (C(deploy_activate)), the
    blue-green checks, the restore's health gate and C(health.yml) all use - parameterised by
    C(app_health_expect) and C(app_version_source).
  - The input is the result of an C(ansible.builtin.uri) task with C(return_content) true (its C(status),
    C(content) or C(json), and the response headers as C(uri) returns them).
  - A malformed O(expect) or O(source) fails, naming C(app_health_expect) or C(app_version_source) and the field.
  - The companion filters C(health_expect_check) (returns C(app_health_expect) with its defaults, or fails),
    C(version_source_check), C(health_rule_problems) (validate's list) and C(health_version_statement)
    (what the served-version check reads, or that it checks health only).
options:
  _input:
    description: A registered C(ansible.builtin.uri) result.
    type: dict
    required: true
  expect:
    description: C(app_health_expect) - C(status), C(json_path) with C(json_value), C(components).
    type: dict
  source:
    description: C(app_version_source) - C(json:<path>) (default C(json:version)), C(header:<Name>) or C(none).
    type: str
  versions:
    description: Releases the answer may name; empty - the version is not checked.
    type: list
    elements: str
"""

EXAMPLES = r"""
- name: The host serves the release healthy
  ansible.builtin.assert:
    that: __seen.ok
    fail_msg: "{{ __seen.what }}"
  vars:
    __seen: >-
      {{ register_health | opsbook.webstack.health_judge(app_health_expect | default({}),
           app_version_source | default('json:version'), [release]) }}
"""

RETURN = r"""
_value:
  description:
    - C(ok) (healthy and, when checked, the right version), C(healthy), C(status), C(version),
      C(version_checked), C(components), C(problems) and C(what) (one line for messages).
  type: dict
"""

UNANSWERED = (None, -1, 0)


def health_judge(result, expect=None, source=None, versions=None):
    result = dict(result or {})
    status = result.get("status")
    status = None if status in UNANSWERED else int(status)
    body = result.get("content")
    if body is None:
        body = result.get("json")
    try:
        return judge(status, body, result, dict(expect or {}), source, [str(v) for v in versions or []])
    except HealthError as exc:
        raise AnsibleFilterError(str(exc)) from None


def health_expect_check(expect, variable="app_health_expect"):
    try:
        return health_expect(None if expect is None else dict(expect), variable)
    except HealthError as exc:
        raise AnsibleFilterError(str(exc)) from None


def version_source_check(source, variable="app_version_source"):
    try:
        kind, name = version_source(source, variable)
    except HealthError as exc:
        raise AnsibleFilterError(str(exc)) from None
    return f"{kind}:{name}" if name else kind


def health_rule_problems(expect, source=None):
    """validate's list: what is wrong with app_health_expect and app_version_source ([] when nothing)."""
    problems = []
    for check in (lambda: health_expect(None if expect is None else dict(expect))), (lambda: version_source(source)):
        try:
            check()
        except HealthError as exc:
            problems.append(f"{exc}.")
    return problems


def health_version_statement(source):
    try:
        return version_statement(source)
    except HealthError as exc:
        raise AnsibleFilterError(str(exc)) from None


class FilterModule:
    def filters(self):
        return {
            "health_judge": health_judge,
            "health_expect_check": health_expect_check,
            "version_source_check": version_source_check,
            "health_rule_problems": health_rule_problems,
            "health_version_statement": health_version_statement,
        }
