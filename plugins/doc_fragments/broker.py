# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Redis fallback options of the broker_url and broker_spec filters."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  redis_password:
    description: C(app_redis_password), the fallback for a Redis broker.
    type: str
  redis_host:
    description: C(app_redis_host).
    type: str
  redis_port:
    description: C(app_redis_port).
    type: int
    default: 6379
  redis_db:
    description: C(app_redis_db).
    type: int
    default: 0
  redis:
    description:
      - C(app_redis), whether the app uses Redis. False - an empty C(app_broker) is no broker (an empty URL,
        kind C(none)) and C(kind=redis) is refused naming C(app_redis).
    type: bool
    default: true
    version_added: 0.4.0
"""
