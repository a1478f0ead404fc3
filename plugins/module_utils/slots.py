# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Blue-green slots and the app's systemd units per host: pure functions, no I/O.

``app_slots`` describes the two slots, each a group of hosts and the port its web processes
listen on::

    {"blue": {"group": "app", "port": 8001}, "green": {"group": "app", "port": 8002}}

Both slots on the same group (different ports) is the two-ports topology; two groups is the
host-group topology. An empty mapping means no blue-green: one web unit per app host on
``app_http_port``, served from ``current``.
"""

from __future__ import annotations

import re

SLOTS = ("blue", "green")


class SlotError(ValueError):
    """Bad slot input; the message names the variable and what was expected."""


def other_slot(slot: str) -> str:
    if slot not in SLOTS:
        raise SlotError(f"slot must be blue or green, got {slot!r}")
    return SLOTS[1 - SLOTS.index(slot)]


def check_slots(app_slots, groups) -> dict:
    """Return app_slots normalised (port as int), or raise SlotError naming what is wrong."""
    if not app_slots:
        return {}
    if not isinstance(app_slots, dict) or sorted(app_slots) != sorted(SLOTS):
        got = sorted(app_slots) if isinstance(app_slots, dict) else type(app_slots).__name__
        raise SlotError(f"app_slots must have exactly the keys blue and green, got {got}")
    out = {}
    for slot in SLOTS:
        spec = app_slots[slot]
        if not isinstance(spec, dict) or "group" not in spec or "port" not in spec:
            raise SlotError(f"app_slots.{slot} must be a mapping with group and port, got {spec!r}")
        group = spec["group"]
        if group not in groups or not groups[group]:
            raise SlotError(f"app_slots.{slot}.group {group!r} is not a group with hosts in the inventory")
        try:
            port = int(spec["port"])
        except (TypeError, ValueError):
            port = 0
        if not 0 < port < 65536:
            raise SlotError(f"app_slots.{slot}.port must be a port number, got {spec['port']!r}")
        out[slot] = {"group": group, "port": port}
    blue, green = out["blue"], out["green"]
    shared = set(groups[blue["group"]]) & set(groups[green["group"]])
    if shared and blue["port"] == green["port"]:
        raise SlotError(
            f"app_slots: blue and green share hosts ({', '.join(sorted(shared))}) and port {blue['port']}: "
            "slots on the same hosts need different ports"
        )
    return out


def backends(app_slots, groups, app_group: str, http_port: int, active: str = "blue") -> list[dict]:
    """The load balancer's servers: name, host, port, slot and whether it takes traffic."""
    slots = check_slots(app_slots, groups)
    if not slots:
        return [
            {"name": host, "host": host, "port": int(http_port), "slot": "", "active": True}
            for host in groups.get(app_group, [])
        ]
    if active not in SLOTS:
        raise SlotError(f"the active slot must be blue or green, got {active!r}")
    return [
        {
            "name": f"{host}-{slot}",
            "host": host,
            "port": slots[slot]["port"],
            "slot": slot,
            "active": slot == active,
        }
        for slot in SLOTS
        for host in groups[slots[slot]["group"]]
    ]


def _beat_host(group_hosts: list, scheduler_hosts: list) -> str:
    for host in group_hosts:
        if host in scheduler_hosts:
            return host
    return group_hosts[0] if group_hosts else ""


def _rq_units(app_name: str, app_workers: list, in_worker: bool, on_scheduler: bool) -> list[dict]:
    """`count` units per `kind: rq` item on a worker host (<app>-<name>.service, or
    <app>-<name>-<n>.service when count > 1; the RQ worker is <name>[-<n>]@<host>), and the
    `kind: rq-scheduler` item's unit on the scheduler host, on its queues or else every RQ item's."""
    rq_queues: list = []
    for worker in app_workers:
        if worker.get("kind") == "rq":
            rq_queues += [q for q in worker.get("queues") or [] if q not in rq_queues]
    units = []
    for worker in app_workers:
        kind = worker.get("kind")
        if kind == "rq" and in_worker:
            count = int(worker.get("count") or 1)
            for n in range(1, count + 1):
                base = worker["name"] if count == 1 else f"{worker['name']}-{n}"
                units.append(_rq_unit(app_name, kind, worker, base, list(worker["queues"])))
        elif kind == "rq-scheduler" and on_scheduler:
            queues = list(worker.get("queues") or rq_queues or ["default"])
            units.append(_rq_unit(app_name, kind, worker, worker["name"], queues))
    return units


def _rq_unit(app_name: str, kind: str, worker: dict, base: str, queues: list) -> dict:
    return {
        "unit": f"{app_name}-{base}.service",
        "kind": kind,
        "slot": "",
        "pointer": "current",
        "worker": worker,
        "rq_base": base,
        "queues": queues,
    }


def host_units(
    host: str,
    app_name: str,
    app_workers: list,
    groups: dict,
    app_slots=None,
    group_names: dict | None = None,
) -> list[dict]:
    """The app's units on one host.

    Each: unit (file name), kind (socket, web, worker, beat, rq, rq-scheduler), slot ('' without
    blue-green), pointer (the release pointer the unit runs from: current, blue or green), worker
    (the app_workers item, {} for web), for Celery workers and beat celery_name, for RQ units
    rq_base (the worker's name before @<host>) and queues. ``group_names`` maps the roles' group
    names (app, worker, scheduler) to the inventory's. RQ units exist only without slots (validate
    refuses RQ workers with app_slots).
    """
    names = {"app": "app", "worker": "worker", "scheduler": "scheduler"}
    names.update(group_names or {})
    app_hosts = groups.get(names["app"], [])
    worker_hosts = groups.get(names["worker"], [])
    scheduler_hosts = groups.get(names["scheduler"], [])
    slots = check_slots(app_slots, groups)

    def units_for(slot: str, in_app: bool, in_worker: bool, beat_here: bool) -> list[dict]:
        prefix = f"{app_name}-{slot}" if slot else app_name
        pointer = slot or "current"
        units = []
        if in_app:
            units.append({"unit": f"{prefix}.socket", "kind": "socket", "slot": slot, "pointer": pointer, "worker": {}})
            units.append({"unit": f"{prefix}.service", "kind": "web", "slot": slot, "pointer": pointer, "worker": {}})
        for worker in app_workers:
            kind = worker.get("kind")
            if (kind == "celery" and in_worker) or (kind == "celery-beat" and beat_here):
                units.append(
                    {
                        "unit": f"{prefix}-{worker['name']}.service",
                        "kind": "worker" if kind == "celery" else "beat",
                        "slot": slot,
                        "pointer": pointer,
                        "worker": worker,
                        # the Celery node is <celery_name>@<host>: slots' workers differ by name
                        "celery_name": f"{worker['name']}-{slot}" if slot else worker["name"],
                    }
                )
        if not slot:
            units += _rq_units(app_name, app_workers, in_worker, beat_here)
        return units

    if not slots:
        return units_for("", host in app_hosts, host in worker_hosts, host in scheduler_hosts)
    out = []
    for slot in SLOTS:
        members = groups[slots[slot]["group"]]
        if host not in members:
            continue
        out += units_for(
            slot,
            True,  # a slot's group is where its web processes run
            host in worker_hosts,
            host == _beat_host(members, scheduler_hosts),
        )
    return out


# --------------------------------------------------------------------------- the live slot
#
# Two places say which slot takes traffic: the state file the switch writes on the first load
# balancer (/etc/opsbook/<app>-active-slot), and that load balancer's own configuration (the
# nginx or Caddy upstream file, or the app's backend in haproxy.cfg). The file alone is not enough: when
# it is missing or damaged, assuming blue would deploy into the slot that serves. live_slot()
# reads both and decides once, for every play that needs the live slot.

_HAPROXY_SECTIONS = ("global", "defaults", "frontend", "backend", "listen", "peers", "resolvers", "userlist",
                     "mailers", "program", "http-errors", "ring", "cache")  # fmt: skip


_CADDY_DOWN = re.compile(r"^\s*#\s*down:\s*to\s+(.+)$")


def _strip_comment(line: str) -> str:
    return line.split("#", 1)[0].strip()


def _nginx_servers(text: str) -> list[tuple[str, str, bool]]:
    """(name, address, enabled) of each `server` directive in an nginx upstream file."""
    out = []
    for statement in " ".join(_strip_comment(line) for line in text.splitlines()).split(";"):
        words = statement.replace("{", " ").replace("}", " ").split()
        if "server" in words:
            rest = words[words.index("server") + 1 :]
            if rest:
                out.append(("", rest[0], "down" not in rest[1:] and "backup" not in rest[1:]))
    return out


def _caddy_servers(text: str) -> list[tuple[str, str, bool]]:
    """(name, address, enabled) of each `to` line of a Caddy upstream file (opsbook.webstack.caddy_upstream).

    A server taken out of rotation is a comment (`# down: to host:port`), so Caddy does not see it.
    """
    out = []
    for line in text.splitlines():
        words = _strip_comment(line).split()
        down = _CADDY_DOWN.match(line)
        if words[:1] == ["to"]:
            out += [("", address, True) for address in words[1:]]
        elif down:
            out += [("", address, False) for address in down.group(1).split()]
    return out


def _haproxy_servers(text: str, backend: str) -> list[tuple[str, str, bool]] | None:
    """(name, address, enabled) of each `server` line of one backend; None without that backend."""
    out, inside, found = [], False, False
    for line in text.splitlines():
        words = _strip_comment(line).split()
        if not words:
            continue
        if words[0] in _HAPROXY_SECTIONS:
            inside = words[0] in ("backend", "listen") and words[1:2] == [backend]
            found = found or inside
        elif inside and words[0] == "server" and len(words) >= 3:
            out.append((words[1], words[2], "disabled" not in words[3:]))
    return out if found else None


def served_slot(software: str, text: str, servers: list[dict], backend: str = "") -> tuple[str, str]:
    """The slot a load balancer's configuration sends traffic to: (slot, '') or ('', why not).

    ``servers`` are :func:`backends` (name, host, port, slot); a configured server is known by its
    name (HAProxy: ``<host>-<slot>``) or its ``host:port``. Traffic must go to exactly one slot's
    servers: none, both, or a server of neither slot is no answer.
    """
    by_name = {s["name"]: s["slot"] for s in servers if s["slot"]}
    by_address = {f"{s['host']}:{s['port']}": s["slot"] for s in servers if s["slot"]}
    if software == "haproxy":
        configured = _haproxy_servers(text, backend)
        if configured is None:
            return "", f"it has no backend {backend}"
    elif software == "nginx":
        configured = _nginx_servers(text)
    elif software == "caddy":
        configured = _caddy_servers(text)
    else:
        return "", f"load balancer software {software!r} is not one of {', '.join(LB_SOFTWARE)}"
    enabled = [(name, address) for name, address, on in configured if on]
    if not enabled:
        return "", "it sends traffic to no server"
    slots = {by_name.get(name) or by_address.get(address) for name, address in enabled}
    unknown = [name or address for name, address in enabled if not (by_name.get(name) or by_address.get(address))]
    if unknown:
        return "", f"it sends traffic to {', '.join(unknown)}, which is in neither slot"
    if len(slots) > 1:
        return "", "it sends traffic to both slots"
    return slots.pop(), ""


def live_slot(
    state: str | None,
    state_problem: str,
    config: str | None,
    config_problem: str,
    *,
    software: str,
    servers: list[dict],
    backend: str = "",
    host: str = "the first load balancer",
    state_path: str = "the state file",
    config_path: str = "its configuration",
) -> dict:
    """Decide the live slot from the state file and the load balancer's configuration.

    ``state``/``config`` are the files' texts, None when they could not be read (then
    ``*_problem`` says why: ``missing`` or the reader's message). Returns ``slot`` (blue, green,
    or '' with ``error`` set), ``source`` (how it was decided, for the plan the role prints),
    ``warning`` (the state file was missing or damaged and the configuration decided), and what
    each side said: ``recorded`` and ``served`` ('' when it said nothing usable).
    """
    recorded, why_state = "", ""
    if state is None:
        why_state = "is missing" if state_problem == "missing" else f"cannot be read ({state_problem})"
    elif state.strip() in SLOTS:
        recorded = state.strip()
    else:
        why_state = f"says {state.strip()[:40]!r}, not blue or green"
    served, why_config = "", ""
    if config is None:
        why_config = "is missing" if config_problem == "missing" else f"cannot be read ({config_problem})"
    else:
        served, why_config = served_slot(software, config, servers, backend)
    state_at = f"{state_path} on {host}"
    config_at = f"{config_path} ({software}) on {host}"
    out = {"slot": "", "recorded": recorded, "served": served, "source": "", "warning": "", "error": ""}
    if recorded and served == recorded:
        out.update(slot=recorded, source=f"{state_at} and {config_at} agree")
    elif recorded and served:
        out["error"] = (
            f"The live slot is unclear, so nothing was changed: {state_at} says {recorded}, but {config_at} "
            f"sends traffic to {served}. Find out which slot should serve, make both say it, and run again: "
            f"if {served} is right (clients get it now), write it into the state file "
            f"(echo {served} > {state_path}); if {recorded} is right, put {config_path} back on {recorded}'s "
            f"servers and reload the load balancer (provision.yml renders it from the state file)."
        )
    elif recorded:
        out["error"] = (
            f"The live slot cannot be confirmed, so nothing was changed: {state_at} says {recorded}, but "
            f"{config_at} {why_config}. Make it send traffic to one slot's servers (provision.yml renders it "
            f"from the state file) and run again."
        )
    elif served:
        out.update(slot=served, source=f"{config_at} sends traffic to {served}; {state_path} {why_state}")
        if state is not None or state_problem != "missing":  # missing is the state before the first switch
            out["warning"] = (
                f"{state_path} on {host} {why_state}: the live slot {served} was read from {config_path}; "
                f"the next switch writes the file again."
            )
    else:
        out["error"] = (
            f"Cannot tell which slot is live, so nothing was changed: {state_at} {why_state}, and {config_at} "
            f"{why_config}. Write the slot that serves into {state_path} (blue or green), make {config_path} "
            f"send traffic to that slot's servers (provision.yml renders it from the state file), and run again."
        )
    return out


# The load balancer settings, defined once (issue 22 item 4). Every role reads them through the
# opsbook.webstack.lb_settings filter, from the load balancer's (or the host's) variables:
# (key, public variable, default, older names kept as aliases). An older name that is set wins
# over the public one, so inventories written for an earlier release keep working; two older
# names of one setting set to different values are refused. `{app}` is app_name.
LB_SETTINGS = (
    ("software", "opsbook_lb_software", "nginx", ("provision_lb_software", "deploy_lb_software")),
    ("port", "opsbook_lb_port", 80, ("provision_lb_port", "deploy_lb_port", "blue_green_lb_port")),
    (
        "nginx_upstream",
        "opsbook_lb_nginx_upstream",
        "/etc/nginx/opsbook/{app}-upstream.conf",
        ("deploy_lb_nginx_upstream", "blue_green_nginx_upstream"),
    ),
    (
        "caddy_upstream",
        "opsbook_lb_caddy_upstream",
        "/etc/caddy/opsbook/{app}-upstream.caddy",
        (),
    ),
    (
        "haproxy_socket",
        "opsbook_lb_haproxy_socket",
        "/run/haproxy/admin.sock",
        ("deploy_lb_haproxy_socket", "blue_green_haproxy_socket"),
    ),
    (
        "haproxy_backend",
        "opsbook_lb_haproxy_backend",
        "{app}_app",
        ("deploy_lb_haproxy_backend", "blue_green_haproxy_backend"),
    ),
    # Where the blue-green switch records the slot that takes traffic, on each load balancer.
    ("slot_file", "opsbook_lb_slot_file", "/etc/opsbook/{app}-active-slot", ()),
)
# Not variables: Debian's haproxy.service and caddy.service read these files.
HAPROXY_CONFIG = "/etc/haproxy/haproxy.cfg"
CADDY_CONFIG = "/etc/caddy/Caddyfile"
LB_SOFTWARE = ("nginx", "haproxy", "caddy")


def lb_settings(variables, app_name: str = "") -> dict:
    """The load balancer settings from one host's variables (a mapping), or raise SlotError.

    Returns software, port, nginx_upstream, caddy_upstream, haproxy_socket, haproxy_backend,
    slot_file, haproxy_config, caddy_config, config (the file that says which servers take traffic:
    the nginx upstream file, haproxy.cfg or the Caddy upstream file),
    slot_sources ([slot_file, config], what decides the live slot) and names
    (setting -> the variable it came from, '' for the default).
    """
    app = app_name or variables.get("app_name") or ""
    out: dict = {"names": {}}
    for key, public, default, aliases in LB_SETTINGS:
        given = [(name, variables[name]) for name in aliases if variables.get(name) is not None]
        if len({str(value) for _name, value in given}) > 1:
            shown = ", ".join(f"{name}={value!r}" for name, value in given)
            raise SlotError(f"{shown} are older names of {public} and disagree: set only {public}")
        if given:
            name, value = given[0]
        elif variables.get(public) is not None:
            name, value = public, variables[public]
        else:
            name, value = "", default.format(app=app) if isinstance(default, str) else default
        label = public if not name or name == public else f"{name} (older name of {public})"
        out[key] = _lb_value(key, label, value)
        out["names"][key] = name
    out["haproxy_config"] = HAPROXY_CONFIG
    out["caddy_config"] = CADDY_CONFIG
    configs = {"nginx": out["nginx_upstream"], "haproxy": HAPROXY_CONFIG, "caddy": out["caddy_upstream"]}
    out["config"] = configs[out["software"]]
    # What the live_slot filter reads, in its order: slurp these two (a loop), pass both results.
    out["slot_sources"] = [out["slot_file"], out["config"]]
    return out


def _lb_value(key: str, label: str, value):
    if key == "software":
        if value not in LB_SOFTWARE:
            raise SlotError(f"{label} must be one of {', '.join(LB_SOFTWARE)}, got {value!r}")
        return value
    if key == "port":
        try:
            port = int(value)
        except (TypeError, ValueError):
            port = 0
        if isinstance(value, bool) or not 0 < port < 65536:
            raise SlotError(f"{label} must be a port number (1-65535), got {value!r}")
        return port
    if not isinstance(value, str) or not value.strip() or any(c.isspace() for c in value):
        raise SlotError(f"{label} must be a non-empty name without spaces, got {value!r}")
    if key != "haproxy_backend" and not value.startswith("/"):
        raise SlotError(f"{label} must be an absolute path, got {value!r}")
    return value
