# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The caddy_upstream filter: the text of the app's Caddy upstream file."""

DOCUMENTATION = r"""
name: caddy_upstream
short_description: The app's Caddy upstream file, from its load balancer servers
version_added: 0.4.0
description:
  - >-
    Renders the active servers of C(opsbook.webstack.app_backends) as C(to <host>:<port>) lines, which the
    app's Caddy site imports inside its C(reverse_proxy) block.
  - provision writes it, and the blue-green switch rewrites it, from this one function, so both produce the
    same bytes and a later provision run changes nothing after a switch.
  - >-
    A rolling deploy takes a server out by turning its line into the comment C(# down: to <host>:<port>)
    (M(opsbook.webstack.caddy_upstream_server)); Caddy does not see it, the live slot reading still does.
options:
  _input:
    description: Servers from C(opsbook.webstack.app_backends).
    type: list
    elements: dict
    required: true
"""

EXAMPLES = r"""
- name: Write the upstream
  ansible.builtin.copy:
    content: >-
      {{ app_slots | opsbook.webstack.app_backends(groups, 'app', 8000, 'green')
         | opsbook.webstack.caddy_upstream }}
    dest: /etc/caddy/opsbook/journal-upstream.caddy
    mode: "0644"
"""

RETURN = r"""
_value:
  description: The file's text.
  type: str
"""


def caddy_upstream(servers):
    slots = sorted({s["slot"] for s in servers if s["active"] and s["slot"]})
    lines = [
        "# Managed by opsbook (provision renders it, the blue-green switch rewrites it).",
        f"# Slot: {slots[0]}" if slots else "# All app hosts (no blue-green slots).",
    ]
    lines += [f"to {s['host']}:{s['port']}" for s in servers if s["active"]]
    return "\n".join(lines) + "\n"


class FilterModule:
    def filters(self):
        return {"caddy_upstream": caddy_upstream}
