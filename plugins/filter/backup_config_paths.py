# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The backup_config_paths and backup_archives filters: which configuration files the backup
role saves on a host, by its groups, and the names of the file archives it publishes."""

from __future__ import annotations

from collections.abc import Mapping

DOCUMENTATION = r"""
name: backup_config_paths
short_description: The configuration files the backup role saves on a host, by the host's groups
version_added: 0.2.0
description:
  - A pure function, run by the backup role (C(vars/main.yml)) when C(backup_config_paths) is not set.
  - An app, worker or scheduler host saves the app's env file and config directory and its systemd
    units (web and one per C(app_workers) item); a load balancer the nginx site, C(/etc/nginx/opsbook),
    C(/etc/haproxy/haproxy.cfg), C(/etc/caddy/Caddyfile), C(/etc/caddy/opsbook) and C(/etc/opsbook);
    the database host C(/etc/postgresql); the broker host C(/etc/redis) (unless the app uses no Redis,
    O(redis=false)), and C(/etc/rabbitmq) when the broker is RabbitMQ. A host in several
    groups saves each group's paths, each once, in that order.
  - The companion filter C(backup_archives) (input the archive names, arguments C(backup_id) and
    C(app_name)) gives each archive's temporary and published file names for C(backup_publish).
options:
  _input:
    description: The host (C(inventory_hostname)).
    type: str
    required: true
  groups:
    description: The inventory's groups (the C(groups) magic variable).
    type: dict
    required: true
  group_names:
    description: >-
      The inventory's name of each canonical group (C(app), C(worker), C(scheduler), C(lb), C(db), C(broker));
      a group left out keeps its canonical name.
    type: dict
    required: true
  app_root:
    description: The app's root directory.
    type: str
    required: true
  app_name:
    description: The app's name (its units and nginx site are named after it).
    type: str
    required: true
  app_workers:
    description: The app's workers (C(app_workers)); each item's C(name) names a unit.
    type: list
    elements: dict
    default: []
  broker_kind:
    description: The broker's kind (C(app_broker.kind)), C(redis) or C(rabbitmq).
    type: str
    default: redis
  redis:
    description: C(app_redis), whether the app uses Redis; false saves no C(/etc/redis).
    type: bool
    default: true
    version_added: 0.4.0
"""

EXAMPLES = r"""
- name: Configuration files of this host
  ansible.builtin.debug:
    msg: >-
      {{ inventory_hostname | opsbook.webstack.backup_config_paths(groups, {'app': 'app', 'worker': 'worker',
           'scheduler': 'scheduler', 'lb': 'lb', 'db': 'db', 'broker': 'broker'}, app_root, app_name, app_workers) }}
"""

RETURN = r"""
_value:
  description: Absolute paths, each once; empty for a host in none of the groups.
  type: list
  elements: str
"""


def backup_config_paths(
    host, groups, group_names, app_root, app_name, app_workers=None, broker_kind="redis", redis=True
):
    groups = dict(groups or {}) if isinstance(groups, Mapping) else {}
    names = dict(group_names or {})

    def member(*canonical: str) -> bool:
        return any(host in (groups.get(names.get(group, group)) or []) for group in canonical)

    paths = []
    if member("app", "worker", "scheduler"):
        paths += [f"{app_root}/shared/env", f"{app_root}/shared/config", f"/etc/systemd/system/{app_name}.service"]
        paths += [f"/etc/systemd/system/{app_name}-{worker['name']}.service" for worker in app_workers or []]
    if member("lb"):
        paths += [
            f"/etc/nginx/sites-available/{app_name}.conf",
            "/etc/nginx/opsbook",
            "/etc/haproxy/haproxy.cfg",
            "/etc/caddy/Caddyfile",
            "/etc/caddy/opsbook",
        ]
        paths += ["/etc/opsbook"]
    if member("db"):
        paths.append("/etc/postgresql")
    if member("broker"):
        if redis:
            paths.append("/etc/redis")
        if broker_kind == "rabbitmq":
            paths.append("/etc/rabbitmq")
    return list(dict.fromkeys(paths))


def backup_archives(names, backup_id, app_name) -> list[dict]:
    """Each file archive's name, temporary file (src) and published file (dest) in the backup directory."""
    return [
        {"name": name, "src": f".tmp-{backup_id}-{name}.tar.gz", "dest": f"{app_name}-{backup_id}-{name}.tar.gz"}
        for name in names or []
    ]


class FilterModule:
    def filters(self):
        return {"backup_config_paths": backup_config_paths, "backup_archives": backup_archives}
