#!/usr/bin/python
# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: deploy_lock
short_description: Take or release a lock (one deploy per app, one backup per database), naming its holder
version_added: "0.1.0"
description:
  - The lock is a directory (C(mkdir) is atomic) with a C(holder.json) note inside it
    naming who holds it, from where, since when, and for which release.
  - C(state=present) takes the lock. When another run holds it, the module waits up to
    O(wait_timeout) seconds for it to be released, then fails naming the holder.
  - A lock older than O(stale_after) seconds is stale (its holder died without releasing
    it). It is taken over and the old holder is returned in RV(taken_over).
  - C(state=absent) releases the lock, but only when O(token) matches the holder's token,
    so a run never releases a lock someone else holds (unless O(force=true)).
author: opsbook engineers
options:
  path:
    description: Directory that is the lock.
    type: path
    required: true
  state:
    description: C(present) takes the lock, C(absent) releases it.
    type: str
    choices: [present, absent]
    default: present
  token:
    description:
      - Identifies this run. Taking a lock this token already holds changes nothing.
    type: str
    required: true
  holder:
    description:
      - What to record about the holder (for example user, controller host, release, action).
      - Returned to anyone who finds the lock held.
    type: dict
    default: {}
  wait_timeout:
    description: Seconds to wait for a held lock to be released before failing. V(0) fails at once.
    type: int
    default: 0
  wait_timeout_name:
    description: The variable that sets O(wait_timeout), named in the failure message.
    type: str
    default: deploy_lock_timeout
  stale_after:
    description: A lock older than this many seconds is stale and taken over.
    type: int
    default: 3600
  force:
    description: With C(state=absent), release the lock whoever holds it.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: Reports whether the lock would be taken or released; the lock is not touched.
"""

EXAMPLES = r"""
- name: Take the deploy lock of the app
  opsbook.webstack.deploy_lock:
    path: /var/lib/opsbook/journal-deploy.lock
    token: "{{ deploy_lock_token }}"
    holder:
      user: alice
      controller: ci-runner-3
      release: 20261122T051039Z-v2
    wait_timeout: 60

- name: Release it
  opsbook.webstack.deploy_lock:
    path: /var/lib/opsbook/journal-deploy.lock
    token: "{{ deploy_lock_token }}"
    state: absent
"""

RETURN = r"""
holder:
  description: The holder note of the lock after the call (empty when released).
  returned: always
  type: dict
  sample: {"user": "alice", "controller": "ci-3", "release": "20261122T051039Z-v2", "since": "2026-11-22T05:10:39Z"}
taken_over:
  description: The holder of a stale lock that was taken over.
  returned: when a stale lock was taken over
  type: dict
waited:
  description: Seconds spent waiting for another holder.
  returned: always
  type: float
  sample: 0.0
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.opsbook.webstack.plugins.module_utils.lock import LockHeld, describe, release, take


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            token=dict(type="str", required=True, no_log=False),
            holder=dict(type="dict", default={}),
            wait_timeout=dict(type="int", default=0),
            wait_timeout_name=dict(type="str", default="deploy_lock_timeout"),
            stale_after=dict(type="int", default=3600),
            force=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    params = module.params
    if params["state"] == "absent":
        module.exit_json(
            **release(params["path"], params["token"], force=params["force"], check_mode=module.check_mode)
        )
    try:
        result = take(
            params["path"],
            params["token"],
            params["holder"],
            wait_timeout=params["wait_timeout"],
            wait_timeout_name=params["wait_timeout_name"],
            stale_after=params["stale_after"],
            check_mode=module.check_mode,
        )
    except LockHeld as held:
        module.fail_json(msg=held.msg, holder=held.holder, waited=held.waited)
    if "taken_over" in result and not module.check_mode:
        module.warn(f"took over the stale lock {params['path']} of {describe(result['taken_over'])}")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
