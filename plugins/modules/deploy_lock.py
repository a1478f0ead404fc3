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

import json
import os
import shutil
import time
from datetime import UTC, datetime

from ansible.module_utils.basic import AnsibleModule

HOLDER = "holder.json"


def read_holder(path: str) -> dict | None:
    """The holder note, {} when the lock exists without a readable note, None when there is no lock."""
    if not os.path.isdir(path):
        return None
    try:
        with open(os.path.join(path, HOLDER), encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return {}


def lock_age(path: str) -> float:
    try:
        return time.time() - os.stat(path).st_mtime
    except OSError:
        return 0.0


def describe(holder: dict) -> str:
    if not holder:
        return "an unknown holder (no holder note)"
    return "{user}@{controller} since {since} (release {release}, {action})".format(
        user=holder.get("user", "?"),
        controller=holder.get("controller", "?"),
        since=holder.get("since", "?"),
        release=holder.get("release", "?"),
        action=holder.get("action", "deploy"),
    )


def try_take(path: str, note: dict) -> bool:
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        return False
    tmp = os.path.join(path, HOLDER + ".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(note, handle)
    os.rename(tmp, os.path.join(path, HOLDER))
    return True


def take(module: AnsibleModule) -> None:
    path, token = module.params["path"], module.params["token"]
    note = dict(module.params["holder"])
    note["token"] = token
    note["since"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    deadline = time.monotonic() + module.params["wait_timeout"]
    started = time.monotonic()
    taken_over = None
    while True:
        holder = read_holder(path)
        if holder is not None and holder.get("token") == token:
            module.exit_json(changed=False, holder=public(holder), waited=0.0)
        if holder is not None and lock_age(path) > module.params["stale_after"]:
            taken_over = public(holder)
            if module.check_mode:
                module.exit_json(changed=True, holder=public(note), taken_over=taken_over, waited=0.0)
            shutil.rmtree(path, ignore_errors=True)
            holder = None
        if holder is None:
            if module.check_mode:
                module.exit_json(changed=True, holder=public(note), waited=0.0)
            os.makedirs(os.path.dirname(path) or "/", mode=0o755, exist_ok=True)
            if try_take(path, note):
                result = {"changed": True, "holder": public(note), "waited": round(time.monotonic() - started, 1)}
                if taken_over is not None:
                    result["taken_over"] = taken_over
                    module.warn(f"took over the stale lock {path} of {describe(taken_over)}")
                module.exit_json(**result)
            continue  # someone else took it between our look and our mkdir
        if time.monotonic() >= deadline:
            waited = ""
            if module.params["wait_timeout"]:
                waited = f" Waited {module.params['wait_timeout']} s ({module.params['wait_timeout_name']})."
            module.fail_json(
                msg=(
                    f"Another run holds the lock {path}: {describe(holder)}.{waited} It becomes stale after "
                    f"{module.params['stale_after']} s; if that run is dead, remove the directory."
                ),
                holder=public(holder),
                waited=round(time.monotonic() - started, 1),
            )
        time.sleep(1)


def release(module: AnsibleModule) -> None:
    path, token = module.params["path"], module.params["token"]
    holder = read_holder(path)
    if holder is None:
        module.exit_json(changed=False, holder={}, waited=0.0)
    if holder.get("token") != token and not module.params["force"]:
        module.exit_json(changed=False, holder=public(holder), waited=0.0, msg="held by another run; left alone")
    if not module.check_mode:
        shutil.rmtree(path)
    module.exit_json(changed=True, holder={}, waited=0.0)


def public(holder: dict) -> dict:
    return {k: v for k, v in holder.items() if k != "token"}


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
    if module.params["state"] == "present":
        take(module)
    else:
        release(module)


if __name__ == "__main__":
    main()
