# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The nginx_upstream filter: the text of the app's nginx upstream file."""

DOCUMENTATION = r"""
name: nginx_upstream
short_description: The app's nginx upstream block, from its load balancer servers
version_added: 0.2.0
description:
  - Renders the active servers of C(opsbook.webstack.app_backends) as an C(upstream <app>_app) block.
  - provision writes it, and the blue-green switch rewrites it, from this one function, so both
    produce the same bytes and a later provision run changes nothing after a switch.
options:
  _input:
    description: Servers from C(opsbook.webstack.app_backends).
    type: list
    elements: dict
    required: true
  app_name:
    description: The app's name; the upstream is C(<app_name>_app).
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Write the upstream
  ansible.builtin.copy:
    content: >-
      {{ app_slots | opsbook.webstack.app_backends(groups, 'app', 8000, 'green')
         | opsbook.webstack.nginx_upstream(app_name) }}
    dest: /etc/nginx/opsbook/journal-upstream.conf
    mode: "0644"
"""

RETURN = r"""
_value:
  description: The file's text.
  type: str
"""


def nginx_upstream(servers, app_name):
    slots = sorted({s["slot"] for s in servers if s["active"] and s["slot"]})
    lines = [
        "# Managed by opsbook (provision renders it, the blue-green switch rewrites it).",
        f"# Slot: {slots[0]}" if slots else "# All app hosts (no blue-green slots).",
        f"upstream {app_name}_app {{",
    ]
    lines += [f"    server {s['host']}:{s['port']} max_fails=3 fail_timeout=5s;" for s in servers if s["active"]]
    lines += ["    keepalive 16;", "}", ""]
    return "\n".join(lines)


class FilterModule:
    def filters(self):
        return {"nginx_upstream": nginx_upstream}
