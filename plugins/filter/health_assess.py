# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The health_assess filter: warning and critical levels for report measurements."""

from ansible.errors import AnsibleFilterError
from ansible_collections.opsbook.webstack.plugins.module_utils.health import HealthError, assess

DOCUMENTATION = r"""
name: health_assess
short_description: Give report measurements their warning and critical levels
version_added: 0.1.0
description:
  - A pure function of the measurements and the thresholds; used by the maintenance role's
    reports (maintenance.yml and health.yml).
  - Default thresholds are the seeds' alert tables (disk and memory 80/90 %, connections 80/90 %
    of max_connections, queries 10/60 s, queue depth 100/1000, certificates 30/7 days left) plus
    dead tuples 20/50 %, estimated bloat 30/60 %, error lines 1/50, and C(failed) for services and
    endpoints (a value of 0 or 1, where 1 is critical).
  - Bad when high, except C(certificate_days) (bad when low). A measurement without a metric is
    information (C(ok)); a value of null is C(critical) when the measurement is C(required),
    else C(unknown).
options:
  _input:
    description:
      - Measurements, each a dict with C(check) and optionally C(host), C(subject), C(metric),
        C(value) (a number or null), C(unit), C(detail), C(required).
    type: list
    elements: dict
    required: true
  overrides:
    description:
      - Per metric, C(warning) and/or C(critical) replacing the defaults; a new metric needs both.
    type: dict
"""

EXAMPLES = r"""
- name: Judge the measurements
  ansible.builtin.set_fact:
    report: "{{ measurements | opsbook.webstack.health_assess({'disk_percent': {'warning': 70}}) }}"
"""

RETURN = r"""
_value:
  description:
    - C(findings) (each measurement with C(level) and C(threshold), worst first), C(counts)
      per level (C(ok), C(unknown), C(warning), C(critical)), C(worst), and the C(thresholds) used.
  type: dict
"""


def health_assess(measurements, overrides=None):
    try:
        return assess(list(measurements or []), dict(overrides or {}))
    except HealthError as exc:
        raise AnsibleFilterError(f"health_assess: {exc}") from None


class FilterModule:
    def filters(self):
        return {"health_assess": health_assess}
