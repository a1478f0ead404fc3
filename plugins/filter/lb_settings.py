# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lb_settings filter: the load balancer settings, defined once, from a host's variables."""

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError
from ansible_collections.opsbook.webstack.plugins.module_utils.slots import SlotError, lb_settings

DOCUMENTATION = r"""
name: lb_settings
short_description: The load balancer settings (software, port, nginx upstream, HAProxy socket and backend, slot file)
version_added: 0.4.0
description:
  - The one definition of the load balancer settings every role reads (deploy, blue_green, maintenance, provision).
    Give it a host's variables (C(hostvars[host])), usually a load balancer's, since each load balancer may run
    its own software.
  - Each setting has a public variable C(opsbook_lb_*) and a default. The older names kept as aliases
    (C(provision_lb_software), C(deploy_lb_software); C(provision_lb_port), C(deploy_lb_port),
    C(blue_green_lb_port); C(deploy_lb_nginx_upstream), C(blue_green_nginx_upstream);
    C(deploy_lb_haproxy_socket), C(blue_green_haproxy_socket); C(deploy_lb_haproxy_backend),
    C(blue_green_haproxy_backend)) win over the public one when set, so an existing inventory keeps working.
  - A bad value, or two older names of one setting that disagree, is an error naming the variable and what was
    expected.
options:
  _input:
    description: The host's variables, C(hostvars[host]).
    type: dict
    required: true
  app_name:
    description: The app, for the defaults that contain its name; default the variables' C(app_name).
    type: str
    default: ""
"""

EXAMPLES = r"""
- name: Take this host out of every HAProxy load balancer
  community.general.haproxy:
    socket: "{{ (hostvars[item] | opsbook.webstack.lb_settings).haproxy_socket }}"
    backend: "{{ (hostvars[item] | opsbook.webstack.lb_settings).haproxy_backend }}"
    host: "{{ inventory_hostname }}"
    state: disabled
  delegate_to: "{{ item }}"
  loop: "{{ groups['lb'] }}"
  when: (hostvars[item] | opsbook.webstack.lb_settings).software == 'haproxy'
"""

RETURN = r"""
_value:
  description: The settings.
  type: dict
  contains:
    software:
      description: C(nginx) or C(haproxy) (C(opsbook_lb_software), default C(nginx)).
      type: str
    port:
      description: The port the load balancer serves the app on (C(opsbook_lb_port), default 80).
      type: int
    nginx_upstream:
      description:
        - The app's nginx upstream file (C(opsbook_lb_nginx_upstream), default
          C(/etc/nginx/opsbook/<app>-upstream.conf)).
      type: str
    haproxy_socket:
      description: HAProxy's admin socket (C(opsbook_lb_haproxy_socket), default C(/run/haproxy/admin.sock)).
      type: str
    haproxy_backend:
      description: The app's HAProxy backend (C(opsbook_lb_haproxy_backend), default C(<app>_app)).
      type: str
    slot_file:
      description:
        - Where the blue-green switch records the live slot (C(opsbook_lb_slot_file), default
          C(/etc/opsbook/<app>-active-slot)).
      type: str
    haproxy_config:
      description: HAProxy's configuration file, C(/etc/haproxy/haproxy.cfg) (not a variable).
      type: str
    config:
      description: The file that says which servers take traffic, C(nginx_upstream) or C(haproxy_config) by C(software).
      type: str
    names:
      description: For each setting, the variable it was taken from (empty for the default).
      type: dict
"""


def lb_settings_filter(variables, app_name=""):
    if not isinstance(variables, Mapping):
        got = type(variables).__name__
        raise AnsibleFilterError(f"lb_settings: expects a host's variables (hostvars[host]), got {got}")
    try:
        return lb_settings(variables, app_name)
    except SlotError as exc:
        raise AnsibleFilterError(f"lb_settings: {exc}") from None


class FilterModule:
    def filters(self):
        return {"lb_settings": lb_settings_filter}
