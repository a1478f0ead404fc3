#!/usr/bin/python
# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: run_lock
short_description: Take or release a lock (one deploy per app, one backup per database), naming its holder
version_added: "0.1.0"
description:
  - The lock is a directory with a C(holder.json) note inside it naming who holds it, from
    where, since when, and for which release. A new lock is filled under a private name and
    renamed into place, so it is never seen without its note.
  - C(state=present) takes the lock. When another run holds it, the module waits up to
    O(wait_timeout) seconds for it to be released, then fails naming the holder and why it is
    not stale.
  - A lock goes stale when its holder stops showing signs of life, not by its age. Taking the
    lock again with the same O(token) is the holder's heartbeat (it refreshes the note's mtime
    and changes nothing else); the deploy role does it at every phase. A lock without a heartbeat
    for the O(stale_after) its holder declared is stale. When the note names the holder's process
    (O(owner)) and this host is that process's host, boot and pid namespace, the process decides
    instead. Alive, the lock is held whatever its heartbeat; gone (or its pid reused), the lock is
    free at once. A pid from another host, boot or pid namespace is not trusted.
  - Run through Ansible, the action plugin of the same name records the controller's
    C(ansible-playbook) process as O(owner) and, when the lock is held by a process of this same
    controller (hostname, boot id and pid namespace) that is gone, takes it over at once
    (O(take_over)) with a warning C(took over the lock of <holder>, pid N is gone). A live holder
    is never taken over.
  - A takeover is atomic. It happens under C(flock) of C(<path>/.mutex) after reading the note
    again, so of two runs taking over the same stale lock exactly one wins and the other finds
    the lock held by the winner. The old holder is returned in RV(taken_over).
  - C(state=absent) releases the lock, but only when O(token) matches the holder's token,
    so a run never releases a lock someone else holds (unless O(force=true)).
  - One lock module for every run that must not interleave with another, named for that. The
    deploy role takes it for a deploy, a rollback or a restart; the backup role releases its
    backup lock with it. It was named C(deploy_lock) before version 0.2.0; C(opsbook.webstack.deploy_lock)
    still works, as a deprecated redirect to this module (C(meta/runtime.yml)).
author: opsbook engineers (@opsbook)
options:
  path:
    description: Directory that is the lock.
    type: path
    required: true
  state:
    description:
      - C(present) takes the lock, C(absent) releases it.
      - C(heartbeat) refreshes the heartbeat of the lock O(token) holds and changes nothing else;
        a lock that is gone or held by another run is neither taken nor touched, the result says
        so in RV(held) and a warning names the holder (the run goes on, since stopping a deploy
        half-way, or its recovery, does more harm than finishing it). Added in version 0.2.0.
    type: str
    choices: [present, absent, heartbeat]
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
    description:
      - A lock without a heartbeat for this many seconds is stale and taken over.
      - The holder's value counts. It is recorded in the note when the lock is taken, and a run
        that finds the lock held applies the holder's value, not its own (a note written before
        version 0.2.0 has none, and then this run's value applies, to the lock's age).
    type: int
    default: 3600
  owner:
    description:
      - The process that holds the lock, recorded in the note so that a run on the same machine
        can tell it is gone. Keys C(hostname), C(boot_id), C(pidns) (the target of
        C(/proc/self/ns/pid)), C(pid) and C(pid_start) (field 22 of C(/proc/<pid>/stat)).
      - Set by the action plugin to the controller's C(ansible-playbook) process; omit it.
    type: dict
    version_added: 0.2.0
  take_over:
    description:
      - The C(generation) of a holder found dead (its process is gone on the controller). The lock
        is taken over if that holder still holds it, whatever its heartbeat; a lock another run
        took meanwhile is not.
      - Set by the action plugin; omit it.
    type: str
    version_added: 0.2.0
  take_over_reason:
    description: Why O(take_over) names a dead holder, for the warning and RV(reason).
    type: str
    version_added: 0.2.0
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
  opsbook.webstack.run_lock:
    path: /var/lib/opsbook/journal-deploy.lock
    token: "{{ deploy_lock_token }}"
    holder:
      user: alice
      controller: ci-runner-3
      release: 20261122T051039Z-v2
    wait_timeout: 60

- name: Heartbeat at the start of every later phase (a deploy longer than stale_after keeps its lock)
  opsbook.webstack.run_lock:
    path: /var/lib/opsbook/journal-deploy.lock
    token: "{{ deploy_lock_token }}"
    state: heartbeat

- name: Release it
  opsbook.webstack.run_lock:
    path: /var/lib/opsbook/journal-deploy.lock
    token: "{{ deploy_lock_token }}"
    state: absent
"""

RETURN = r"""
holder:
  description: The holder note of the lock after the call (empty when released).
  returned: always
  type: dict
  sample: {"user": "alice", "controller": "ci-3", "release": "20261122T051039Z-v2", "since": "2026-11-22T05:10:39Z",
           "generation": "5f0c2a9e1d3b4c67", "stale_after": 3600,
           "owner": {"hostname": "ci-3", "boot_id": "e6e8da85-e520-44a7-bd39-524a7640c246",
                     "pidns": "pid:[4026531836]", "pid": 48213, "pid_start": 1234567}}
taken_over:
  description: The holder of a stale lock that was taken over.
  returned: when a stale lock was taken over
  type: dict
reason:
  description: Why the lock taken over was stale.
  returned: when a stale lock was taken over
  type: str
  sample: pid 48213 is gone
  version_added: 0.2.0
held:
  description: With O(state=heartbeat), whether O(token) still holds the lock.
  returned: with O(state=heartbeat)
  type: bool
  version_added: 0.2.0
waited:
  description: Seconds spent waiting for another holder.
  returned: always
  type: float
  sample: 0.0
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.opsbook.webstack.plugins.module_utils.lock import (
    LockHeld,
    describe,
    heartbeat,
    public,
    read_holder,
    release,
    take,
)


def beat(module: AnsibleModule, path: str, token: str) -> dict:
    note = read_holder(path)
    held = bool(note) and note.get("token") == token
    if held and not module.check_mode:
        held = heartbeat(path, token)
        note = read_holder(path) if not held else note
    if not held and not (module.check_mode and note is None):  # check mode took no lock
        whose = f"held by {describe(note)}" if note else "gone"
        module.warn(f"the lock {path} is no longer held by this run ({whose}): another run may be running")
    return {"changed": False, "held": held, "holder": public(note or {}), "waited": 0.0}


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            state=dict(type="str", choices=["present", "absent", "heartbeat"], default="present"),
            token=dict(type="str", required=True, no_log=False),
            holder=dict(type="dict", default={}),
            wait_timeout=dict(type="int", default=0),
            wait_timeout_name=dict(type="str", default="deploy_lock_timeout"),
            stale_after=dict(type="int", default=3600),
            force=dict(type="bool", default=False),
            owner=dict(type="dict"),
            take_over=dict(type="str"),
            take_over_reason=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    if params["state"] == "absent":
        module.exit_json(
            **release(params["path"], params["token"], force=params["force"], check_mode=module.check_mode)
        )
    if params["state"] == "heartbeat":
        module.exit_json(**beat(module, params["path"], params["token"]))
    holder = dict(params["holder"])
    if params["owner"]:
        holder["owner"] = params["owner"]
    try:
        result = take(
            params["path"],
            params["token"],
            holder,
            wait_timeout=params["wait_timeout"],
            wait_timeout_name=params["wait_timeout_name"],
            stale_after=params["stale_after"],
            check_mode=module.check_mode,
            take_over=params["take_over"],
            reason=params["take_over_reason"],
        )
    except LockHeld as held:
        module.fail_json(msg=held.msg, holder=held.holder, waited=held.waited)
    except OSError as exc:
        module.fail_json(msg=f"could not take the lock {params['path']}: {exc}")
    if "taken_over" in result and not module.check_mode:
        module.warn(f"took over the lock {params['path']} of {describe(result['taken_over'])}, {result['reason']}")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
