#!/usr/bin/python
# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: caddy_upstream_server
short_description: Take one server of a Caddy upstream file out of rotation or back, validate and reload Caddy
version_added: "0.4.0"
description:
  - >-
    Turns the C(to HOST:PORT) line of the upstream file O(path) (the one C(opsbook.webstack.caddy_upstream)
    renders, imported inside the site's C(reverse_proxy) block) into the comment C(# down: to HOST:PORT)
    (O(state=down)) or back (O(state=up)), the other lines untouched, then validates the whole configuration
    with O(validate_command) and applies it with O(reload_command).
  - C(caddy reload) loads the new configuration through Caddy's admin API; Caddy applies it gracefully (the
    listeners are kept, requests in flight finish on the old configuration). The file stays the one record
    of which servers take traffic, so a restart of Caddy or a later provision keeps the state.
  - The file is replaced atomically. When the validation fails the old file is put back, nothing reloads and
    the module fails. Nothing is written and nothing reloads when the line already says what O(state) asks.
  - The deploy role runs it on each Caddy load balancer to take an app host out and back in.
author: opsbook engineers (@opsbook)
options:
  path:
    description: The upstream file (for example C(/etc/caddy/opsbook/journal-upstream.caddy)).
    type: path
    required: true
  host:
    description: The server's host, as its C(to) line names it.
    type: str
    required: true
  port:
    description: The server's port, as its C(to) line names it.
    type: int
    required: true
  state:
    description: C(down) takes the server out of rotation, C(up) puts it back.
    type: str
    choices: [down, up]
    required: true
  validate_command:
    description: The configuration check, run after the file is written (argv, no shell).
    type: list
    elements: str
    default: [caddy, validate, --config, /etc/caddy/Caddyfile, --adapter, caddyfile]
  reload_command:
    description: The graceful reload, run after the check passed (argv, no shell).
    type: list
    elements: str
    default: [systemctl, reload, caddy.service]
attributes:
  check_mode:
    support: full
    description: Says whether the line would change (with the diff); writes, validates and reloads nothing.
  diff_mode:
    support: full
    description: The upstream file before and after the change.
seealso:
  - module: opsbook.webstack.nginx_upstream_server
    description: The same for nginx.
  - module: community.general.haproxy
    description: The same for HAProxy, through its admin socket.
"""

EXAMPLES = r"""
- name: Take app1 out of the Caddy upstream on every load balancer
  opsbook.webstack.caddy_upstream_server:
    path: /etc/caddy/opsbook/journal-upstream.caddy
    host: app1
    port: 8000
    state: down
  delegate_to: "{{ item }}"
  loop: "{{ groups['lb'] }}"
  throttle: 1
"""

RETURN = r"""
server:
  description: The server's line as it is after the run.
  returned: success
  type: str
  sample: "# down: to app1:8000"
reloaded:
  description: Whether Caddy was reloaded.
  returned: always
  type: bool
"""

import re

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.opsbook.webstack.plugins.module_utils.files import rewrite_checked


def server_line(host: str, port: int):
    address = re.escape(f"{host}:{port}")
    return re.compile(r"^[ \t]*(# down: )?to " + address + r"[ \t]*$", re.M)


def marked(text: str, host: str, port: int, down: bool):
    """(new text, the server's line after the change); ValueError when the file has no such line."""
    pattern = server_line(host, port)
    if not pattern.search(text):
        raise ValueError(f"no `to {host}:{port}` line")
    line = f"{'# down: ' if down else ''}to {host}:{port}"
    return pattern.sub(line, text), line


VALIDATE = ["caddy", "validate", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            host=dict(type="str", required=True),
            port=dict(type="int", required=True),
            state=dict(type="str", choices=["down", "up"], required=True),
            validate_command=dict(type="list", elements="str", default=VALIDATE),
            reload_command=dict(type="list", elements="str", default=["systemctl", "reload", "caddy.service"]),
        ),
        supports_check_mode=True,
    )
    p = module.params
    rewrite_checked(
        module,
        p["path"],
        lambda text: marked(text, p["host"], p["port"], p["state"] == "down"),
        p["validate_command"],
        p["reload_command"],
        "Caddy",
    )


if __name__ == "__main__":
    main()
