"""The load balancer settings and the blue-green slot file, defined once (issue 22 item 4).

opsbook.webstack.lb_settings (module_utils/slots.py LB_SETTINGS) is the one definition of the load
balancer's software (nginx, haproxy or caddy), port, nginx and Caddy upstream files, HAProxy socket
and backend and the slot file; every
role reads it. The older names (provision_lb_*, deploy_lb_*, blue_green_*) stay aliases: set, they
win; unset, the opsbook_lb_* name or the default applies. Checked here by grepping the roles, and
through ansible-playbook on this machine (inventory group_vars, host_vars and -e, as an inventory
gives them), with the filter alone; tests/unit/test_provision_live_slot.py runs provision's lb_slot
entry point with the older and the new name of the upstream file.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ansible_collections.opsbook.webstack.plugins.module_utils.slots import LB_SETTINGS, SlotError, lb_settings

ROOT = Path(__file__).resolve().parents[2]
PUBLIC = {key: public for key, public, _default, _aliases in LB_SETTINGS}
ALIASES = {alias: public for _key, public, _default, aliases in LB_SETTINGS for alias in aliases}
# What only the definition may spell out: the slot file, the HAProxy socket, the nginx and Caddy
# upstream files, Caddy's configuration file.
LITERALS = re.compile(
    r"active-slot|admin\.sock|-upstream\.(conf|caddy)|unix-connect:/|stats socket /|/etc/caddy/Caddyfile"
)


def code_lines(path: Path):
    """The file's lines that are not comments (YAML `#` lines, Jinja `{# #}` lines)."""
    for number, line in enumerate(path.read_text().splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("#") and not stripped.startswith("#!") or stripped.startswith("{#"):
            continue
        yield number, line


def test_no_role_defines_the_slot_file_or_a_load_balancer_setting_itself():
    """Outside meta/argument_specs.yml (documentation), no role spells out the slot file, the socket, the
    upstream file, or reads or sets a load balancer setting by name: each goes through lb_settings."""
    # a name read or set (followed by a filter, a comparison, an attribute, a quote, `}}` or a YAML key's
    # colon), not a name a message mentions
    names = re.compile(
        r"\b(" + "|".join(sorted(set(ALIASES) | set(PUBLIC.values()))) + r")\b\s*(\||==|!=|\bin\b|\)|\.|\[|'|\"|}}|:)"
    )
    found = []
    for path in sorted((ROOT / "roles").rglob("*")):
        if (
            not path.is_file()
            or path.suffix not in {".yml", ".yaml", ".j2", ".py", ".sh"}
            or path.name == "argument_specs.yml"
        ):
            continue
        for number, line in code_lines(path):
            if LITERALS.search(line) or names.search(line) or re.search(r"lb_port\s*\|\s*default", line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, "defined or read outside opsbook.webstack.lb_settings:\n" + "\n".join(found)
    # and the definition is used: each role that talks to a load balancer reads it
    for role in ("deploy", "blue_green", "maintenance", "provision"):
        text = (ROOT / "roles" / role / "vars" / "main.yml").read_text()
        assert "opsbook.webstack.lb_settings" in text, role


def test_every_alias_is_documented_as_one():
    """docs/inventory.md names every public setting and every alias; each alias is in an argument spec as one."""
    doc = (ROOT / "docs" / "inventory.md").read_text()
    for public in PUBLIC.values():
        assert f"`{public}`" in doc, public
    for alias, public in ALIASES.items():
        assert re.search(rf"`{alias}`[^\n]*`{public}`|`{public}`[^\n]*`{alias}`", doc), (alias, public)
    specs = {}
    for spec in (ROOT / "roles").glob("*/meta/argument_specs.yml"):
        for entry in yaml.safe_load(spec.read_text())["argument_specs"].values():
            specs.update(entry.get("options") or {})
    for alias, public in ALIASES.items():
        assert "description" in specs[alias], alias
        assert f"Older name of {public}" in specs[alias]["description"], alias
        assert "default" not in specs[alias], alias  # unset by default: an alias only wins when set


def test_the_definition_refuses_bad_values_naming_the_variable():
    with pytest.raises(SlotError, match=r"opsbook_lb_software must be one of nginx, haproxy, caddy, got 'apache'"):
        lb_settings({"app_name": "journal", "opsbook_lb_software": "apache"})
    with pytest.raises(SlotError, match=r"deploy_lb_port \(older name of opsbook_lb_port\) must be a port"):
        lb_settings({"app_name": "journal", "deploy_lb_port": "eighty"})
    with pytest.raises(SlotError, match=r"opsbook_lb_slot_file must be an absolute path"):
        lb_settings({"app_name": "journal", "opsbook_lb_slot_file": "active"})
    with pytest.raises(
        SlotError, match=r"provision_lb_port=8080, deploy_lb_port=9090 are older names of opsbook_lb_port"
    ):
        lb_settings({"app_name": "journal", "provision_lb_port": 8080, "deploy_lb_port": 9090})
    with pytest.raises(SlotError, match=r"opsbook_lb_caddy_upstream must be an absolute path, got 'up.caddy'"):
        lb_settings({"app_name": "journal", "opsbook_lb_caddy_upstream": "up.caddy"})
    # the same value under two older names is no conflict
    assert lb_settings({"app_name": "journal", "provision_lb_port": 8080, "deploy_lb_port": "8080"})["port"] == 8080


def playbook_env() -> dict:
    env = {
        **os.environ,
        "ANSIBLE_COLLECTIONS_PATH": str(ROOT / "playbooks" / "collections"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCALHOST_WARNING": "0",
    }
    env.pop("ANSIBLE_CONFIG", None)  # run from tmp_path: the project's ansible.cfg is not read
    return env


def run_playbook(tmp_path: Path, hosts: dict, playbook: str, extra: dict) -> subprocess.CompletedProcess:
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(hosts))
    (tmp_path / "play.yml").write_text(playbook)
    return subprocess.run(
        [Path(sys.executable).parent / "ansible-playbook", "-i", tmp_path / "hosts.yml", tmp_path / "play.yml",
         "-e", json.dumps(extra)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=playbook_env(), cwd=tmp_path, timeout=300,
    )  # fmt: skip


SHOW = """
- name: The load balancer settings of each host
  hosts: all
  gather_facts: false
  tasks:
    - name: Show them
      ansible.builtin.debug:
        msg: >-
          SETTINGS {{ inventory_hostname }}
          {{ hostvars[inventory_hostname] | opsbook.webstack.lb_settings | to_json | b64encode }}
"""
LOCAL = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}


def test_older_names_win_when_set_and_the_new_ones_apply_otherwise(tmp_path):
    hosts = {
        "all": {
            # group_vars: the new names for everyone
            "vars": {"app_name": "journal", "opsbook_lb_port": "{{ 8000 + 81 }}", "opsbook_lb_software": "haproxy"},
            "hosts": {
                "new": dict(LOCAL),
                # host_vars with the older names, as inventories written for 0.3 have them
                "old": {
                    **LOCAL,
                    "provision_lb_port": 8090,
                    "provision_lb_software": "nginx",
                    "deploy_lb_haproxy_socket": "/run/haproxy/other.sock",
                    "blue_green_nginx_upstream": "/etc/nginx/conf.d/up.conf",
                    "blue_green_haproxy_backend": "web",
                },
                "blue_green_only": {**LOCAL, "blue_green_lb_port": 8092},
                "conflict": {**LOCAL, "deploy_lb_software": "haproxy", "provision_lb_software": "nginx"},
                "bad": {**LOCAL, "opsbook_lb_software": "apache"},
                # Caddy (issue 20 item 3): its upstream file is what says which servers take traffic
                "caddy": {**LOCAL, "opsbook_lb_software": "caddy", "opsbook_lb_port": 8083},
            },
        }
    }
    # -e, the highest precedence: still below an older name set on the host
    result = run_playbook(
        tmp_path, hosts, SHOW, {"opsbook_lb_haproxy_backend": "from_e", "opsbook_lb_slot_file": "/srv/slot"}
    )
    assert result.returncode == 2, result.stdout[-4000:]  # two hosts refused, the rest shown
    got = {
        m[1]: json.loads(base64.b64decode(m[2]))
        for m in re.finditer(r"SETTINGS (\w+) ([A-Za-z0-9+/=]{20,})\"", result.stdout)
    }
    assert sorted(got) == ["blue_green_only", "caddy", "new", "old"], result.stdout[-4000:]

    assert got["new"]["software"] == "haproxy" and got["new"]["port"] == 8081
    assert got["new"]["haproxy_socket"] == "/run/haproxy/admin.sock"  # the default
    assert got["new"]["nginx_upstream"] == "/etc/nginx/opsbook/journal-upstream.conf"
    assert got["new"]["haproxy_backend"] == "from_e" and got["new"]["slot_file"] == "/srv/slot"
    assert got["new"]["slot_sources"] == ["/srv/slot", "/etc/haproxy/haproxy.cfg"]
    assert got["new"]["names"]["port"] == "opsbook_lb_port"

    old = got["old"]
    assert (old["software"], old["port"], old["haproxy_socket"], old["nginx_upstream"], old["haproxy_backend"]) == (
        "nginx",
        8090,
        "/run/haproxy/other.sock",
        "/etc/nginx/conf.d/up.conf",
        "web",
    )
    assert old["slot_sources"] == ["/srv/slot", "/etc/nginx/conf.d/up.conf"]
    assert (
        old["names"]["port"] == "provision_lb_port" and old["names"]["haproxy_backend"] == "blue_green_haproxy_backend"
    )
    assert got["blue_green_only"]["port"] == 8092 and got["blue_green_only"]["software"] == "haproxy"
    caddy = got["caddy"]
    assert (caddy["software"], caddy["port"], caddy["caddy_config"]) == ("caddy", 8083, "/etc/caddy/Caddyfile")
    assert caddy["caddy_upstream"] == caddy["config"] == "/etc/caddy/opsbook/journal-upstream.caddy"
    assert caddy["slot_sources"] == ["/srv/slot", "/etc/caddy/opsbook/journal-upstream.caddy"]

    text = " ".join(result.stdout.split())
    assert "provision_lb_software='nginx', deploy_lb_software='haproxy' are older names of opsbook_lb_software" in text
    assert "opsbook_lb_software must be one of nginx, haproxy, caddy, got 'apache'" in text
