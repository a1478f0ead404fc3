#!/usr/bin/python
# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: nginx_upstream_server
short_description: Mark one server of an nginx upstream file down or up, check and reload nginx
version_added: "0.2.0"
description:
  - Marks the C(server HOST:PORT) line of the upstream file O(path) C(down) (O(state=down)) or not
    (O(state=up)), the other lines untouched, then checks the whole configuration with
    O(test_command) and reloads nginx gracefully with O(reload_command) (old workers finish the
    requests they have).
  - The file is replaced atomically (a temporary file renamed over it, with the old one's mode and
    owner). When the check fails the old file is put back, nothing reloads and the module fails.
  - Nothing is written and nothing reloads when the line already says what O(state) asks.
  - The deploy role runs it on each nginx load balancer to take an app host out and back in,
    one module run per load balancer for the edit, the check and the reload.
author: opsbook engineers (@opsbook)
options:
  path:
    description: The upstream file (for example C(/etc/nginx/conf.d/journal-upstream.conf)).
    type: path
    required: true
  host:
    description: The server's host, as its C(server) line names it.
    type: str
    required: true
  port:
    description: The server's port, as its C(server) line names it.
    type: int
    required: true
  state:
    description: C(down) takes the server out of the upstream, C(up) puts it back.
    type: str
    choices: [down, up]
    required: true
  test_command:
    description: The configuration check, run after the file is written (argv, no shell).
    type: list
    elements: str
    default: [nginx, -t, -q]
  reload_command:
    description: The graceful reload, run after the check passed (argv, no shell).
    type: list
    elements: str
    default: [systemctl, reload, nginx.service]
attributes:
  check_mode:
    support: full
    description: Says whether the line would change (with the diff); writes, checks and reloads nothing.
  diff_mode:
    support: full
    description: The upstream file before and after the change.
seealso:
  - module: community.general.haproxy
    description: The same for HAProxy, through its admin socket.
"""

EXAMPLES = r"""
- name: Take app1 out of the nginx upstream on every load balancer
  opsbook.webstack.nginx_upstream_server:
    path: /etc/nginx/conf.d/journal-upstream.conf
    host: app1
    port: 8000
    state: down
  delegate_to: "{{ item }}"
  loop: "{{ groups['lb'] }}"
  throttle: 1
"""

RETURN = r"""
server:
  description: The C(server) line as it is after the run.
  returned: success
  type: str
  sample: server app1:8000 max_fails=0 down;
reloaded:
  description: Whether nginx was reloaded.
  returned: always
  type: bool
"""

import re

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.opsbook.webstack.plugins.module_utils.files import rewrite_checked


def server_line(host: str, port: int):
    return re.compile(r"^(\s*server\s+" + re.escape(host) + ":" + re.escape(str(port)) + r"\b[^;]*?)(\s+down)?;", re.M)


def marked(text: str, host: str, port: int, down: bool):
    """(new text, the server line after the change); ValueError when the file has no such line."""
    pattern = server_line(host, port)
    if not pattern.search(text):
        raise ValueError(f"no `server {host}:{port}` line")
    new = pattern.sub(lambda m: m.group(1) + (" down;" if down else ";"), text)
    return new, pattern.search(new).group(0).strip()


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            host=dict(type="str", required=True),
            port=dict(type="int", required=True),
            state=dict(type="str", choices=["down", "up"], required=True),
            test_command=dict(type="list", elements="str", default=["nginx", "-t", "-q"]),
            reload_command=dict(type="list", elements="str", default=["systemctl", "reload", "nginx.service"]),
        ),
        supports_check_mode=True,
    )
    p = module.params
    rewrite_checked(
        module,
        p["path"],
        lambda text: marked(text, p["host"], p["port"], p["state"] == "down"),
        p["test_command"],
        p["reload_command"],
        "nginx",
    )


if __name__ == "__main__":
    main()
