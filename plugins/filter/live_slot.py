# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The live_slot filter: which blue-green slot takes traffic, from the state file and the LB's configuration."""

import base64
import binascii

from ansible.errors import AnsibleFilterError
from ansible_collections.opsbook.webstack.plugins.module_utils.slots import SlotError, backends, live_slot

DOCUMENTATION = r"""
name: live_slot
short_description: The blue-green slot that takes traffic, decided from the state file and the load balancer
version_added: 0.3.0
description:
  - Takes the C(ansible.builtin.slurp) results of the state file the switch writes on the first load balancer
    (C(opsbook_lb_slot_file), default C(/etc/opsbook/<app>-active-slot)) and of that load balancer's configuration
    (the nginx upstream file, or C(haproxy.cfg)), and decides once which slot is live. Both paths come from
    C(opsbook.webstack.lb_settings) (its C(slot_sources)), the one definition every role reads.
  - Both name the same slot, that slot. The state file missing or damaged, the slot the configuration sends
    traffic to (a missing file is the state before the first switch). The state file naming a slot the
    configuration does not confirm (the other slot, both, none, servers of neither), or neither side usable, is
    an error that names both sources and what to do; nothing should change then.
  - The configuration counts the servers that take traffic (HAProxy without C(disabled), nginx without C(down)
    or C(backup)), known by name (C(<host>-<slot>)) or address (C(host:port)) from C(opsbook.webstack.app_backends).
options:
  _input:
    description: The slurp result of the state file (C(failed) with its message when it could not be read).
    type: dict
    required: true
  config:
    description: The slurp result of the load balancer's configuration.
    type: dict
    required: true
  app_slots:
    description: The blue-green slots.
    type: dict
    required: true
  groups:
    description: The inventory's groups.
    type: dict
    required: true
  software:
    description: The load balancer's software, C(nginx) or C(haproxy). Required without O(lb).
    type: str
  lb:
    description:
      - The load balancer's settings (C(opsbook.webstack.lb_settings)); they give O(software), O(backend),
        O(state_path) and O(config_path). The usual way is to slurp its C(slot_sources) in a loop and pass both results.
    type: dict
  backend:
    description: The HAProxy backend of the app.
    type: str
    default: ""
  host:
    description: The load balancer, for messages.
    type: str
    default: the first load balancer
  state_path:
    description: The state file's path, for messages.
    type: str
    default: the state file
  config_path:
    description: The configuration's path, for messages.
    type: str
    default: its configuration
"""

EXAMPLES = r"""
- name: Read the slot file and the configuration of the first load balancer
  ansible.builtin.slurp:
    src: "{{ item }}"
  loop: "{{ (hostvars[groups['lb'][0]] | opsbook.webstack.lb_settings).slot_sources }}"
  delegate_to: "{{ groups['lb'][0] }}"
  run_once: true
  register: blue_green_register_state
  failed_when: false

- name: Decide the live slot from them
  ansible.builtin.set_fact:
    blue_green_live: >-
      {{ blue_green_register_state.results[0] | opsbook.webstack.live_slot(blue_green_register_state.results[1],
           app_slots, groups, lb=hostvars[groups['lb'][0]] | opsbook.webstack.lb_settings, host=groups['lb'][0]) }}

- name: Decide the live slot, every argument given
  ansible.builtin.set_fact:
    blue_green_live: >-
      {{ blue_green_register_state | opsbook.webstack.live_slot(blue_green_register_lb_config, app_slots, groups,
           'nginx', host='lb1', state_path='/etc/opsbook/journal-active-slot',
           config_path='/etc/nginx/opsbook/journal-upstream.conf') }}

- name: Refuse when it is unclear
  ansible.builtin.assert:
    that: blue_green_live.error == ''
    fail_msg: "{{ blue_green_live.error }}"
"""

RETURN = r"""
_value:
  description: The decision.
  type: dict
  contains:
    slot:
      description: The live slot, blue or green; empty when C(error) is set.
      type: str
    source:
      description: How it was decided (which file said what).
      type: str
    warning:
      description: Set when the state file was damaged and the configuration decided.
      type: str
    error:
      description: Why the live slot cannot be decided, naming both sources and what to do; empty otherwise.
      type: str
    recorded:
      description: The slot the state file names; empty when it names none.
      type: str
    served:
      description: The slot the configuration sends traffic to; empty when it is not exactly one slot.
      type: str
"""


def _text(result) -> tuple[str | None, str]:
    """A slurp result as (text, '') or (None, 'missing' or the reader's message)."""
    result = result or {}
    if "content" in result and not result.get("failed"):
        try:
            return base64.b64decode(result["content"]).decode("utf-8", errors="replace"), ""
        except (binascii.Error, TypeError, ValueError) as exc:
            return None, f"its content is not base64: {exc}"
    msg = str(result.get("msg") or "not read")
    if msg.lower().startswith("file not found"):
        return None, "missing"
    return None, msg


def live_slot_filter(
    state,
    config,
    app_slots,
    groups,
    software=None,
    backend="",
    host="the first load balancer",
    state_path="the state file",
    config_path="its configuration",
    lb=None,
):
    if lb:
        software, backend = lb["software"], lb["haproxy_backend"]
        state_path, config_path = lb["slot_file"], lb["config"]
    if not app_slots:
        raise AnsibleFilterError("live_slot: app_slots is empty: without slots there is no live slot")
    try:
        servers = backends(app_slots, dict(groups), "", 0)
    except SlotError as exc:
        raise AnsibleFilterError(f"live_slot: {exc}") from None
    state_text, state_problem = _text(state)
    config_text, config_problem = _text(config)
    return live_slot(
        state_text,
        state_problem,
        config_text,
        config_problem,
        software=software,
        servers=servers,
        backend=backend,
        host=host,
        state_path=state_path,
        config_path=config_path,
    )


class FilterModule:
    def filters(self):
        return {"live_slot": live_slot_filter}
