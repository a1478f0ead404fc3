# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The redis_url filter: the app's Redis (broker) URL, every part percent-encoded."""

from __future__ import annotations

from urllib.parse import quote

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: redis_url
short_description: The Redis URL (Celery broker, RQ) with the password and user fully percent-encoded
version_added: 0.2.0
description:
  - Builds C(redis://[user]:password@host:port/db) once for every role that needs the broker URL
    (deploy, celery, maintenance, blue_green), so they all send the same bytes.
  - The user and password are percent-encoded with no character left as it is (C(/), C(:),
    C(@), C(%), C(#), C(?), space, quotes, newline...); the C(urlencode) filter keeps C(/),
    which broke the URL of a password holding one. redis-py and kombu decode them back.
  - An IPv6 host is put in brackets.
options:
  _input:
    description: The password (empty for a Redis without one).
    type: str
    required: true
  host:
    description: Redis host name or address.
    type: str
    required: true
  port:
    description: Redis port.
    type: int
    default: 6379
  db:
    description: Redis database number.
    type: int
    default: 0
  user:
    description: ACL user name (Redis 6+); empty for the default user.
    type: str
    default: ""
  scheme:
    description: C(redis) or C(rediss) (TLS).
    type: str
    default: redis
"""

EXAMPLES = r"""
- name: The broker URL every role uses
  ansible.builtin.set_fact:
    broker_url: "{{ app_redis_password | opsbook.webstack.redis_url(app_redis_host, app_redis_port, app_redis_db) }}"
# a/b:c@d -> redis://:a%2Fb%3Ac%40d@redis1:6379/0
"""

RETURN = r"""
_value:
  description: The URL.
  type: str
  sample: redis://:a%2Fb%3Ac%40d@redis1:6379/0
"""


def redis_url(password, host, port=6379, db=0, user="", scheme="redis") -> str:
    if scheme not in ("redis", "rediss"):
        raise AnsibleFilterError(f"redis_url: scheme must be redis or rediss, got {scheme!r}")
    host = str(host)
    if not host or any(c in host for c in "/@?#[] ") and not host.startswith("["):
        raise AnsibleFilterError(f"redis_url: {host!r} is not a host name or address")
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    try:
        port, db = int(port), int(db)
    except (TypeError, ValueError):
        raise AnsibleFilterError(f"redis_url: port and db must be integers, got {port!r}, {db!r}") from None
    password = "" if password is None else str(password)
    credentials = ""
    if user or password:
        credentials = f"{quote(str(user or ''), safe='')}:{quote(password, safe='')}@"
    return f"{scheme}://{credentials}{host}:{port}/{db}"


class FilterModule:
    def filters(self):
        return {"redis_url": redis_url}
