# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The broker_url filter: the app's Celery broker URL (Redis or RabbitMQ) from app_broker.

broker_spec (plugins/filter/broker_spec.py) is the same description with its defaults filled in."""

from __future__ import annotations

from urllib.parse import quote

from ansible.errors import AnsibleFilterError
from ansible_collections.opsbook.webstack.plugins.filter.redis_url import redis_url

DOCUMENTATION = r"""
name: broker_url
short_description: The Celery broker URL (Redis or RabbitMQ) from app_broker, every credential percent-encoded
version_added: 0.3.0
description:
  - The one definition of the broker URL. Deploy, celery, maintenance and blue_green and the app's
    environment file (C(CELERY_BROKER_URL)) all call it, so they send the same bytes.
  - The input is C(app_broker), a dictionary with C(kind) (C(redis), the default, or C(rabbitmq)),
    C(host), C(port), C(vhost) (RabbitMQ), C(db) (Redis), C(user), C(password) and C(tls). Empty or
    undefined means the Redis of C(app_redis_*), which the arguments give, so an inventory written
    before C(app_broker) existed gets the URL it had.
  - For C(kind=redis) a key left out of C(app_broker) is taken from the C(app_redis_*) arguments.
    For C(kind=rabbitmq), C(host), C(user) and C(password) are required; C(port) defaults to 5672
    (5671 with C(tls)) and C(vhost) to C(/).
  - The user, password and vhost are percent-encoded with no character left as it is (C(/), C(:),
    C(@), C(%), C(#), C(?), space...); kombu decodes them back. An IPv6 host is put in brackets.
  - An incomplete or mistyped description fails naming C(app_broker) and the key.
  - With O(redis=false) (C(app_redis) false, an app that uses no Redis) an empty C(app_broker) is no broker at
    all - the URL is empty - and C(kind=redis) fails naming C(app_redis).
extends_documentation_fragment:
  - opsbook.webstack.broker
options:
  _input:
    description: C(app_broker) (a dictionary; empty or none for the Redis of C(app_redis_*)).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: The broker URL every role uses (roles/*/vars/main.yml)
  ansible.builtin.set_fact:
    broker_url: >-
      {{ app_broker | default({}) | opsbook.webstack.broker_url(app_redis_password, app_redis_host,
         app_redis_port, app_redis_db) }}
# app_broker: {kind: rabbitmq, host: rabbit1, vhost: journal, user: journal, password: "p@ss/w:rd"}
# -> amqp://journal:p%40ss%2Fw%3Ard@rabbit1:5672/journal
# app_broker undefined -> redis://:PASSWORD@redis1:6379/0, as before
# app_broker undefined, app_redis false -> '' (no broker: the app has no Celery)
"""

RETURN = r"""
_value:
  description: The URL.
  type: str
  sample: amqp://journal:p%40ss%2Fw%3Ard@rabbit1:5672/journal
"""

KINDS = ("redis", "rabbitmq")
_KEYS = {
    "redis": ("kind", "host", "port", "db", "user", "password", "tls"),
    "rabbitmq": ("kind", "host", "port", "vhost", "user", "password", "tls"),
}


def _truth(value) -> bool:
    """Ansible's `| bool` of app_redis: a string from -e or an INI inventory reads as YAML does."""
    if isinstance(value, str):
        return value.strip().lower() in ("yes", "on", "1", "true", "y", "t")
    return bool(value)


def _fail(message: str) -> AnsibleFilterError:
    return AnsibleFilterError(f"app_broker: {message}")


def _int(spec: dict, key: str) -> int:
    value = spec[key]
    if isinstance(value, bool):
        raise _fail(f"{key} must be an integer, got {value!r}")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise _fail(f"{key} must be an integer, got {value!r}") from None


# What broker_spec gives for an app without Redis and without app_broker: no broker.
NO_BROKER = {"kind": "none", "host": "", "port": 0, "user": "", "password": "", "tls": False}


def broker_spec(broker, redis_password=None, redis_host=None, redis_port=6379, redis_db=0, redis=True) -> dict:
    """app_broker with every default filled in: kind, host, port, user, password, tls, and vhost
    (RabbitMQ) or db (Redis). Raises naming app_broker and the key on an incomplete description.
    redis is app_redis: without Redis, an empty app_broker is NO_BROKER and kind redis is refused."""
    if broker in (None, ""):
        broker = {}
    if not isinstance(broker, dict):
        raise _fail(f"must be a dictionary with kind (one of {', '.join(KINDS)}), host, port, ..., got {broker!r}")
    if not _truth(redis):
        if not broker:
            return dict(NO_BROKER)
        if str(broker.get("kind") or "redis") == "redis":
            raise _fail(
                "kind is redis (the default), but app_redis is false: the app uses no Redis. Set kind rabbitmq,"
                " or app_redis: true with app_redis_host, app_redis_port, app_redis_db and app_redis_password."
            )
    kind = str(broker.get("kind") or "redis")
    if kind not in KINDS:
        raise _fail(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    unknown = sorted(set(broker) - set(_KEYS[kind]))
    if unknown:
        raise _fail(
            f"unknown key(s) for kind {kind}: {', '.join(map(str, unknown))}; accepted: {', '.join(_KEYS[kind])}"
        )
    tls = broker.get("tls", False)
    if not isinstance(tls, bool):
        raise _fail(f"tls must be true or false, got {tls!r}")
    if kind == "redis":
        spec = {
            "kind": kind,
            "host": broker.get("host") or redis_host,
            "port": broker.get("port") or redis_port,
            "db": broker.get("db", redis_db),
            "user": broker.get("user") or "",
            "password": broker.get("password", redis_password),
            "tls": tls,
        }
        if not spec["host"]:
            raise _fail("host is missing (and app_redis_host is not set) for kind redis")
        spec["port"], spec["db"] = _int(spec, "port"), _int(spec, "db")
        spec["password"] = "" if spec["password"] is None else str(spec["password"])
        return spec
    missing = [key for key in ("host", "user", "password") if broker.get(key) in (None, "")]
    if missing:
        raise _fail(f"kind rabbitmq needs {', '.join(missing)} (missing or empty)")
    spec = {
        "kind": kind,
        "host": str(broker["host"]),
        "port": broker.get("port") or (5671 if tls else 5672),
        "vhost": str(broker.get("vhost") or "/"),
        "user": str(broker["user"]),
        "password": str(broker["password"]),
        "tls": tls,
    }
    spec["port"] = _int(spec, "port")
    return spec


def broker_url(broker, redis_password=None, redis_host=None, redis_port=6379, redis_db=0, redis=True) -> str:
    spec = broker_spec(broker, redis_password, redis_host, redis_port, redis_db, redis)
    if spec["kind"] == "none":
        return ""
    if spec["kind"] == "redis":
        try:
            url = redis_url(
                spec["password"],
                spec["host"],
                spec["port"],
                spec["db"],
                spec["user"],
                "rediss" if spec["tls"] else "redis",
            )
        except AnsibleFilterError as exc:
            raise _fail(str(exc)) from None
        # Celery refuses a rediss:// broker that does not say how to check the certificate.
        return url + "?ssl_cert_reqs=required" if spec["tls"] else url
    host = spec["host"]
    if not host or any(c in host for c in "/@?#[] ") and not host.startswith("["):
        raise _fail(f"host {host!r} is not a host name or address")
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    scheme = "amqps" if spec["tls"] else "amqp"
    credentials = f"{quote(spec['user'], safe='')}:{quote(spec['password'], safe='')}"
    return f"{scheme}://{credentials}@{host}:{spec['port']}/{quote(spec['vhost'], safe='')}"


class FilterModule:
    def filters(self):
        return {"broker_url": broker_url}
