# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The by_host filter: per-host messages as one list, each naming its hosts unless all have it."""

from __future__ import annotations

from collections.abc import Mapping

DOCUMENTATION = r"""
name: by_host
short_description: Per-host messages as one list, each once, naming its hosts unless every host has it
version_added: 0.2.0
description:
  - A pure function, for checks that one task runs for every play host (P(opsbook.webstack.play_host_vars#filter)).
  - Each message appears once, in the order first seen; one that not every host has ends with C((on host, ...)).
options:
  _input:
    description: A mapping of each host checked to its messages (a list), also for hosts without one.
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: One message per problem, naming the hosts when they differ
  ansible.builtin.debug:
    msg: >-
      {{ {'app1': ['app_name is bad'], 'app2': ['app_name is bad', 'app_user is bad']}
         | opsbook.webstack.by_host }}
  # ['app_name is bad', 'app_user is bad (on app2)']
"""

RETURN = r"""
_value:
  description: The messages, each once.
  type: list
  elements: str
"""


def by_host(items_by_host: Mapping) -> list[str]:
    """One list from {host: [message]}: each message once, in first-seen order, naming its hosts unless all have it."""
    hosts = list(items_by_host)
    seen: dict[str, list[str]] = {}
    for host in hosts:
        for item in items_by_host[host] or []:
            seen.setdefault(str(item), [])
            if host not in seen[str(item)]:
                seen[str(item)].append(host)
    return [item if len(on) == len(hosts) else f"{item} (on {', '.join(on)})" for item, on in seen.items()]


class FilterModule:
    def filters(self):
        return {"by_host": by_host}
