# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The health_measure filter: rows of a query or a command turned into report measurements."""

from ansible.errors import AnsibleFilterError
from ansible_collections.opsbook.webstack.plugins.module_utils.health import HealthError, measure

DOCUMENTATION = r"""
name: health_measure
short_description: Turn rows into report measurements of one check
version_added: 0.1.0
description:
  - Each row (a dict, such as a row of C(community.postgresql.postgresql_query)'s C(query_result))
    becomes one measurement for P(opsbook.webstack.health_assess#filter)'s input.
options:
  _input:
    description: The rows.
    type: list
    elements: dict
    required: true
  host:
    description: The host measured.
    type: str
    required: true
  check:
    description: The check's name (C(dead tuples), C(disk), ...).
    type: str
    required: true
  metric:
    description: The threshold the value is judged by (C(dead_tuples_percent), ...); empty for information.
    type: str
    required: true
  value:
    description: The row key holding the value (a number or null).
    type: str
    required: true
  unit:
    description: The value's unit, for the report.
    type: str
    required: true
  subject:
    description: The row key naming what was measured (a table, a mount point).
    type: str
    required: true
  detail:
    description: The row key holding a detail for the report.
    type: str
"""

EXAMPLES = r"""
- name: Dead tuples per table as measurements
  ansible.builtin.set_fact:
    measurements: >-
      {{ tables | opsbook.webstack.health_measure(inventory_hostname, 'dead tuples',
                                                   'dead_tuples_percent', 'dead_percent', '%', 'name') }}
"""

RETURN = r"""
_value:
  description: Measurements, each with C(host), C(check), C(subject), C(metric), C(value), C(unit), C(detail).
  type: list
  elements: dict
"""


def health_measure(rows, host, check, metric, value, unit, subject, detail=None):
    try:
        return measure(list(rows or []), host, check, metric, value, unit, subject, detail)
    except HealthError as exc:
        raise AnsibleFilterError(f"health_measure: {exc}") from None


class FilterModule:
    def filters(self):
        return {"health_measure": health_measure}
