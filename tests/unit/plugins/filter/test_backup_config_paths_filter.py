"""The backup role's configuration paths by group and its archive names (plugins/filter/
backup_config_paths.py, issue 22 item 5: the Jinja loops of roles/backup/vars/main.yml). End to end
in tests/unit/test_backup_config_paths.py and Molecule operations."""

from __future__ import annotations

from ansible_collections.opsbook.webstack.plugins.filter.backup_config_paths import backup_archives, backup_config_paths


def test_a_host_saves_the_configuration_of_each_of_its_groups_once() -> None:
    groups = {"web": ["app1"], "worker": ["app1"], "lb": ["lb1"], "db": ["db1"], "broker": ["db1"]}
    names = {"app": "web", "worker": "worker", "scheduler": "scheduler", "lb": "lb", "db": "db", "broker": "broker"}
    workers = [{"name": "worker"}, {"name": "beat"}]
    assert backup_config_paths("app1", groups, names, "/srv/shop", "shop", workers) == [
        "/srv/shop/shared/env",
        "/srv/shop/shared/config",
        "/etc/systemd/system/shop.service",
        "/etc/systemd/system/shop-worker.service",
        "/etc/systemd/system/shop-beat.service",
    ]
    assert backup_config_paths("lb1", groups, names, "/srv/shop", "shop") == [
        "/etc/nginx/sites-available/shop.conf",
        "/etc/nginx/opsbook",
        "/etc/haproxy/haproxy.cfg",
        "/etc/caddy/Caddyfile",
        "/etc/caddy/opsbook",
        "/etc/opsbook",
    ]
    assert backup_config_paths("db1", groups, names, "/srv/shop", "shop") == ["/etc/postgresql", "/etc/redis"]
    assert backup_config_paths("db1", groups, names, "/srv/shop", "shop", [], "rabbitmq")[-1] == "/etc/rabbitmq"
    assert backup_config_paths("other", groups, names, "/srv/shop", "shop") == []


def test_each_archive_has_its_temporary_and_published_name() -> None:
    assert backup_archives(["config-app1", "media"], "20260101T000000Z", "shop") == [
        {
            "name": "config-app1",
            "src": ".tmp-20260101T000000Z-config-app1.tar.gz",
            "dest": "shop-20260101T000000Z-config-app1.tar.gz",
        },
        {"name": "media", "src": ".tmp-20260101T000000Z-media.tar.gz", "dest": "shop-20260101T000000Z-media.tar.gz"},
    ]
    assert backup_archives([], "x", "shop") == []
