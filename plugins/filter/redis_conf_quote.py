# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The redis_conf_quote filter: one argument of a redis.conf directive, double-quoted."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: redis_conf_quote
short_description: Quote an argument of a redis.conf directive (requirepass, masterauth...)
version_added: 0.2.0
description:
  - Returns the value double-quoted as Redis reads its configuration (sdssplitargs) with
    C(\\) and C(") escaped and every byte outside printable ASCII (newline, tab, non-ASCII
    UTF-8) written C(\xHH). Unquoted, a password with a space becomes two arguments and
    C(requirepass) refuses to start; one starting with C(") or C(') is read as quoted.
options:
  _input:
    description: The value.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Redis config
  ansible.builtin.copy:
    content: |
      requirepass {{ app_redis_password | opsbook.webstack.redis_conf_quote }}
    dest: /etc/redis/opsbook.conf
    mode: "0640"
# a b"c -> "a b\"c"
"""

RETURN = r"""
_value:
  description: The quoted argument.
  type: str
  sample: '"a b\"c"'
"""


def redis_conf_quote(value) -> str:
    if value is None:
        raise AnsibleFilterError("redis_conf_quote: no value")
    out = []
    for byte in str(value).encode("utf-8"):
        char = chr(byte)
        if char in '\\"':
            out.append("\\" + char)
        elif 0x20 <= byte < 0x7F:
            out.append(char)
        else:
            out.append(f"\\x{byte:02x}")
    return '"' + "".join(out) + '"'


class FilterModule:
    def filters(self):
        return {"redis_conf_quote": redis_conf_quote}
