"""The live blue-green slot, decided once from the state file and the load balancer's own configuration.

Issue 19 item 11: with the state file missing or unreadable, the role assumed blue and could deploy
into the slot that serves. The configurations here are the ones the roles write: the nginx upstream
from opsbook.webstack.nginx_upstream, haproxy.cfg from provision's template, the Caddy upstream from
opsbook.webstack.caddy_upstream (issue 20 item 3), with a server taken out by caddy_upstream_server.
"""

from __future__ import annotations

import base64
from pathlib import Path

import jinja2
import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.opsbook.webstack.plugins.filter.app_backends import app_backends
from ansible_collections.opsbook.webstack.plugins.filter.caddy_upstream import caddy_upstream
from ansible_collections.opsbook.webstack.plugins.filter.live_slot import live_slot_filter
from ansible_collections.opsbook.webstack.plugins.filter.nginx_upstream import nginx_upstream
from ansible_collections.opsbook.webstack.plugins.module_utils.slots import lb_settings, served_slot

ROOT = Path(__file__).resolve().parents[4]
GROUPS = {"lb": ["lb1"], "app": ["app1", "app2"], "app_blue": ["app1"], "app_green": ["app2"]}
PORTS = {"blue": {"group": "app", "port": 8001}, "green": {"group": "app", "port": 8002}}
HOST_GROUPS = {"blue": {"group": "app_blue", "port": 8000}, "green": {"group": "app_green", "port": 8000}}
STATE = "/etc/opsbook/journal-active-slot"
UPSTREAM = "/etc/nginx/opsbook/journal-upstream.conf"
HAPROXY = "/etc/haproxy/haproxy.cfg"
CADDY = "/etc/caddy/opsbook/journal-upstream.caddy"
CONFIG = {"nginx": UPSTREAM, "haproxy": HAPROXY, "caddy": CADDY}
SOFTWARE = list(CONFIG)


def nginx(slots: dict, active: str) -> str:
    return nginx_upstream(app_backends(slots, GROUPS, "app", 8000, active), "journal")


def haproxy(slots: dict, active: str) -> str:
    template = (ROOT / "roles" / "provision" / "templates" / "haproxy.cfg.j2").read_text()
    return jinja2.Template(template).render(
        ansible_managed="managed",
        app_name="journal",
        # as provision's vars/main.yml has them (opsbook.webstack.lb_settings)
        **{"__provision_lb": lb_settings({"app_name": "journal", "opsbook_lb_software": "haproxy"})},
        provision_lb_maintenance_exempt_paths=["/health/"],
        provision_lb_maintenance_retry_after=30,
        provision_lb_health_path="/health/",
        provision_lb_backends=app_backends(slots, GROUPS, "app", 8000, active),
    )


def caddy(slots: dict, active: str) -> str:
    return caddy_upstream(app_backends(slots, GROUPS, "app", 8000, active))


def render(software: str, slots: dict, active: str) -> str:
    return {"nginx": nginx, "haproxy": haproxy, "caddy": caddy}[software](slots, active)


def read(text: str | None, msg: str = "") -> dict:
    """A slurp result: the file's content, or the module's failure."""
    if text is None:
        return {"failed": True, "msg": msg or f"File not found: {STATE}"}
    return {"content": base64.b64encode(text.encode()).decode(), "encoding": "base64", "source": STATE}


def decide(state: dict, config: dict, software: str = "nginx", slots: dict = PORTS) -> dict:
    return live_slot_filter(
        state,
        config,
        slots,
        GROUPS,
        software,
        backend="journal_app",
        host="lb1",
        state_path=STATE,
        config_path=CONFIG[software],
    )


# Unparseable configurations: each says no single slot takes traffic.
def both_slots(software: str) -> str:
    if software == "caddy":
        return caddy(PORTS, "blue") + "to app1:8002\n"
    if software == "nginx":
        return nginx(PORTS, "blue").replace("keepalive", "server app1:8002;\n    keepalive")
    return haproxy(PORTS, "blue").replace(" disabled", "")


def no_server(software: str) -> str:
    if software == "caddy":  # every server taken out (caddy_upstream_server's comment)
        return caddy(PORTS, "blue").replace("\nto ", "\n# down: to ")
    if software == "nginx":
        return "upstream journal_app {\n    keepalive 16;\n}\n"
    return haproxy(PORTS, "blue").replace("inter 2s fall 3 rise 2\n", "inter 2s fall 3 rise 2 disabled\n")


def foreign_server(software: str) -> str:
    if software == "caddy":
        return caddy(PORTS, "blue") + "to 10.0.0.9:9000\n"
    if software == "nginx":
        return "upstream journal_app {\n    server 10.0.0.9:9000;\n}\n"
    return haproxy(PORTS, "blue").replace("server app1-blue app1:8001", "server old1 10.0.0.9:9000")


UNPARSEABLE = {
    "both slots": (both_slots, "sends traffic to both slots"),
    "no server": (no_server, "sends traffic to no server"),
    "a server of neither slot": (foreign_server, "which is in neither slot"),
    "missing": (None, "is missing"),
    "unreadable": ("unreadable", "cannot be read (File is not readable"),
}


def config_result(software: str, kind: str) -> dict:
    if kind in ("blue", "green"):
        return read(render(software, PORTS, kind))
    make, _ = UNPARSEABLE[kind]
    if make is None:
        return read(None, f"File not found: {UPSTREAM}")
    if make == "unreadable":
        return read(None, f"File is not readable: {UPSTREAM}")
    return read(make(software))


STATES = {
    "blue": read("blue\n"),
    "green": read("green\n"),
    "missing": read(None),
    "unreadable": read(None, f"Source is a directory and must be a file: {STATE}"),
    "garbage": read("gr\x00een?\n"),
    "empty": read(""),
}


@pytest.mark.parametrize("software", SOFTWARE)
@pytest.mark.parametrize("state", list(STATES))
@pytest.mark.parametrize("config", ["blue", "green", *UNPARSEABLE])
def test_the_live_slot_for_every_state_file_and_configuration(software, state, config):
    got = decide(STATES[state], config_result(software, config), software)
    recorded = state if state in ("blue", "green") else ""
    served = config if config in ("blue", "green") else ""
    assert got["recorded"] == recorded and got["served"] == served, got
    if recorded and served == recorded:
        assert got["slot"] == recorded and got["error"] == "" and got["warning"] == ""
        assert "agree" in got["source"]
    elif recorded and served:
        # Disagreement: refused, naming both sources, what each says, and what to do.
        assert got["slot"] == "", got
        assert got["error"].startswith("The live slot is unclear, so nothing was changed")
        assert f"{STATE} on lb1 says {recorded}" in got["error"]
        config_path = CONFIG[software]
        assert f"{config_path} ({software}) on lb1 sends traffic to {served}" in got["error"]
        assert f"echo {served} > {STATE}" in got["error"]
    elif recorded:
        assert got["slot"] == "", got
        assert got["error"].startswith("The live slot cannot be confirmed")
        assert UNPARSEABLE[config][1] in got["error"], got["error"]
    elif served:
        # The state file missing or damaged: the configuration decides, never blue by default.
        assert got["slot"] == served and got["error"] == "", got
        assert f"sends traffic to {served}" in got["source"]
        assert (got["warning"] == "") == (state == "missing"), got
    else:
        assert got["slot"] == "", got
        assert got["error"].startswith("Cannot tell which slot is live, so nothing was changed")
        assert UNPARSEABLE[config][1] in got["error"], got["error"]
        assert STATE in got["error"]


def test_the_state_file_missing_after_a_switch_to_green_is_not_blue():
    """The case of issue 19 item 11, as the lab has it after blue_green.yml put v2 on green."""
    for software in SOFTWARE:
        got = decide(read(None), read(render(software, PORTS, "green")), software)
        assert got["slot"] == "green", got


@pytest.mark.parametrize("software", SOFTWARE)
@pytest.mark.parametrize("active", ["blue", "green"])
def test_host_group_topology_is_read_by_host(software, active):
    """One slot per host on the same port: the address's host tells the slot."""
    servers = app_backends(HOST_GROUPS, GROUPS, "app", 0)
    assert served_slot(software, render(software, HOST_GROUPS, active), servers, "journal_app") == (active, "")


def test_haproxy_reads_only_the_app_backend():
    other = "\nbackend other_app\n    server app1-green app1:8002 check\n"
    servers = app_backends(PORTS, GROUPS, "app", 0)
    assert served_slot("haproxy", haproxy(PORTS, "blue") + other, servers, "journal_app") == ("blue", "")
    assert served_slot("haproxy", haproxy(PORTS, "blue"), servers, "nope") == ("", "it has no backend nope")


def test_nginx_servers_marked_down_or_backup_take_no_traffic():
    text = nginx(PORTS, "green").replace(
        "keepalive", "server app1:8001 down;\n    server app2:8001 backup;\n    keepalive"
    )
    assert served_slot("nginx", text, app_backends(PORTS, GROUPS, "app", 0)) == ("green", "")


def test_the_header_comment_is_not_trusted():
    """nginx_upstream writes `# Slot: <slot>`; the servers decide, not the comment."""
    text = nginx(PORTS, "green").replace("# Slot: green", "# Slot: blue")
    assert decide(read(None), read(text))["slot"] == "green"


def test_without_slots_there_is_no_live_slot():
    with pytest.raises(AnsibleFilterError, match="app_slots is empty"):
        live_slot_filter(read("blue"), read(""), {}, GROUPS, "nginx")


@pytest.mark.parametrize("software", SOFTWARE)
def test_the_load_balancer_settings_give_software_backend_and_paths(software):
    """lb= (opsbook.webstack.lb_settings, as the roles pass it) decides as the arguments one by one do."""
    lb = lb_settings({"app_name": "journal", "opsbook_lb_software": software})
    assert lb["slot_sources"] == [STATE, CONFIG[software]]
    state, config = read("blue\n"), read(render(software, PORTS, "green"))
    got = live_slot_filter(state, config, PORTS, GROUPS, lb=lb, host="lb1")
    assert got == decide(state, config, software)
    assert got["error"] and f"{lb['config']} ({software}) on lb1" in got["error"]


def test_a_backend_of_another_name_is_read_through_the_settings():
    """HAProxy's backend named by opsbook_lb_haproxy_backend: its servers decide, not <app>_app's."""
    lb = lb_settings({"app_name": "journal", "opsbook_lb_software": "haproxy", "opsbook_lb_haproxy_backend": "web"})
    text = render("haproxy", PORTS, "green").replace("journal_app", "web")
    assert live_slot_filter(read(None), read(text), PORTS, GROUPS, lb=lb)["slot"] == "green"
    assert live_slot_filter(read(None), read(text), PORTS, GROUPS, "haproxy", backend="journal_app")["slot"] == ""


def test_caddy_servers_taken_out_take_no_traffic_and_the_header_is_not_trusted():
    """A rolling deploy comments a server out (`# down: to ...`); the `to` lines decide, not `# Slot:`."""
    servers = app_backends(PORTS, GROUPS, "app", 0)
    text = caddy(PORTS, "green").replace("to app1:8002", "# down: to app1:8002")
    assert served_slot("caddy", text, servers) == ("green", "")
    text += "# down: to app1:8001\n# a comment naming to app2:8001\n"
    assert served_slot("caddy", text.replace("# Slot: green", "# Slot: blue"), servers) == ("green", "")
    # several upstreams on one `to` line are each read
    assert served_slot("caddy", "to app1:8001 app2:8002\n", servers) == ("", "it sends traffic to both slots")
