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


def host_units(
    host: str,
    app_name: str,
    app_workers: list,
    groups: dict,
    app_slots=None,
    group_names: dict | None = None,
) -> list[dict]:
    """The app's units on one host.

    Each: unit (file name), kind (socket, web, worker, beat), slot ('' without blue-green),
    pointer (the release pointer the unit runs from: current, blue or green), worker (the
    app_workers item, {} for web), and for workers and beat celery_name. ``group_names`` maps
    the roles' group names (app, worker, scheduler) to the inventory's.
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
