#!/usr/bin/python
# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: deploy_record
short_description: Record a deploy on an app host (deploy log and local fact) and remove old releases
version_added: "0.1.0"
description:
  - Reads what O(pointer) serves now (the release it links to and that release's C(REVISION)),
    appends one JSON line to the deploy log O(log_path), and updates the local fact
    O(fact_path) under O(app) and the pointer's name.
  - The fact's C(previous) moves only when what the pointer serves changed since the fact was
    written; a deploy that was rolled back leaves C(release) and C(previous) as they were.
  - With O(prune=true), removes the releases under O(app_root)C(/releases) that are marked
    failed (a C(FAILED) file inside), and the oldest good ones beyond the newest O(keep).
    Never removed - the releases named in O(protect) and every release a symbolic link
    directly under O(app_root) points at (C(current), blue-green slots).
  - One call per host for what was about ten tasks; the deploy role's finish phase uses it.
author: opsbook engineers (@opsbook)
options:
  app_root:
    description: The app's root directory (C(releases/), the pointers).
    type: path
    required: true
  app:
    description: The app's name, the key of the local fact.
    type: str
    required: true
  pointer:
    description: The pointer whose state is recorded (C(<app_root>/current) or a slot's pointer).
    type: path
    required: true
  log_path:
    description: The JSON-lines deploy log; its directory is created (root, 0755), the file is 0644.
    type: path
    required: true
  fact_path:
    description: The local fact file (JSON); its directory is created (root, 0755), the file is 0644.
    type: path
    required: true
  record:
    description:
      - Fields of the log line, for example C(action), C(release), C(ref), C(revision), C(result),
        C(failed_step), C(switched), C(user), C(duration).
      - The module adds C(time), C(app), C(pointer), C(serving) and C(previous) (O(previous)).
      - C(result) is also the fact's C(last_result).
    type: dict
    required: true
  previous:
    description: The release the pointer served before this run (empty on a first deploy).
    type: str
    default: ""
  prune:
    description: Remove failed releases and the good ones beyond O(keep).
    type: bool
    default: false
  keep:
    description: How many good releases stay (the newest by name, which starts with the time).
    type: int
    default: 5
  protect:
    description: Release names never removed (the new and the previous release).
    type: list
    elements: str
    default: []
attributes:
  check_mode:
    support: full
    description: Reads and returns what would be written and removed; writes and removes nothing.
"""

EXAMPLES = r"""
- name: Record the deploy and remove old releases
  opsbook.webstack.deploy_record:
    app_root: /srv/journal
    app: journal
    pointer: /srv/journal/current
    log_path: /var/log/opsbook/journal-deploy.jsonl
    fact_path: /etc/ansible/facts.d/opsbook_deploy.fact
    previous: 20261122T051039Z-v1
    record:
      action: deploy
      release: 20261123T090000Z-v2
      ref: v2
      result: success
      user: alice
    prune: true
    keep: 5
    protect: [20261123T090000Z-v2, 20261122T051039Z-v1]
"""

RETURN = r"""
serving:
  description: The release the pointer serves (empty when it points at nothing).
  returned: always
  type: str
  sample: 20261123T090000Z-v2
revision:
  description: The revision in the served release's C(REVISION) file.
  returned: always
  type: str
line:
  description: The line appended to the deploy log.
  returned: always
  type: dict
fact:
  description: The pointer's entry in the local fact after the call.
  returned: always
  type: dict
  sample: {"release": "20261123T090000Z-v2", "previous": "20261122T051039Z-v1", "pointer": "/srv/journal/current",
           "revision": "3f1c...", "updated": "2026-11-23T09:01:12Z", "last_result": "success"}
removed:
  description: Release directories removed (would be, in check mode), with the reason.
  returned: always
  type: list
  elements: dict
  sample: [{"path": "/srv/journal/releases/20261101T000000Z-v0", "reason": "beyond the 5 kept"}]
"""

import json
import os
import shutil
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.opsbook.webstack.plugins.module_utils.files import write_atomic
from ansible_collections.opsbook.webstack.plugins.module_utils.releases import served as pointer_target


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def served(pointer: str) -> tuple[str, str]:
    """(release name, revision) the pointer serves; ('', '') when it is not a link."""
    target, revision = pointer_target(pointer)
    return (os.path.basename(target.rstrip("/")), revision) if target is not None else ("", "")


def read_fact(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        return {}
    except ValueError as exc:
        raise ValueError(f"the local fact {path} is not JSON ({exc}); move it away to start a new one") from None
    return data if isinstance(data, dict) else {}


def updated_fact(old: dict, app: str, name: str, entry: dict, previous: str, result: str) -> dict:
    """The fact after this run: 'previous' and 'updated' move only when what is served moved."""
    was = (old.get(app) or {}).get(name) or {}
    moved = was.get("release", "") != entry["release"]
    new = dict(
        entry,
        previous=(was.get("release") or previous) if moved else was.get("previous", ""),
        updated=now() if moved else was.get("updated", ""),
        last_result=result,
    )
    fact = dict(old)
    fact[app] = dict(old.get(app) or {}, **{name: new})
    return fact


def plan_prune(releases: list, failed: set, keep: int, protect: set) -> list:
    """(name, reason) of the releases to remove: the failed ones, then the good ones older than
    the newest `keep`, never one in `protect`. Names sort by time (they start with it)."""
    good = sorted(r for r in releases if r not in failed)
    old = good[:-keep] if keep > 0 and len(good) > keep else []
    plan = [(r, "marked FAILED") for r in sorted(failed)]
    plan += [(r, f"beyond the {keep} kept") for r in old]
    return [(r, why) for r, why in plan if r not in protect]


def pointed_at(app_root: str) -> set:
    """Releases a symbolic link directly under app_root points at (current, blue-green slots)."""
    names = set()
    for entry in os.scandir(app_root):
        if entry.is_symlink():
            names.add(os.path.basename(os.readlink(entry.path).rstrip("/")))
    return names


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            app_root=dict(type="path", required=True),
            app=dict(type="str", required=True),
            pointer=dict(type="path", required=True),
            log_path=dict(type="path", required=True),
            fact_path=dict(type="path", required=True),
            record=dict(type="dict", required=True),
            previous=dict(type="str", default=""),
            prune=dict(type="bool", default=False),
            keep=dict(type="int", default=5),
            protect=dict(type="list", elements="str", default=[]),
        ),
        supports_check_mode=True,
    )
    p = module.params
    if p["keep"] < 1:
        module.fail_json(msg=f"keep must be at least 1 (got {p['keep']})")
    name = os.path.basename(p["pointer"].rstrip("/"))
    release, revision = served(p["pointer"])
    line = dict(time=now(), app=p["app"], pointer=name)
    line.update(p["record"])
    line.update(serving=release, previous=p["previous"])
    result = str(p["record"].get("result", ""))
    try:
        old = read_fact(p["fact_path"])
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    entry = dict(release=release, pointer=p["pointer"], revision=revision)
    fact = updated_fact(old, p["app"], name, entry, p["previous"], result)
    fact_text = json.dumps(fact, indent=4, sort_keys=True) + "\n"

    removed = []
    releases_dir = os.path.join(p["app_root"], "releases")
    if p["prune"] and os.path.isdir(releases_dir):
        dirs = [e.name for e in os.scandir(releases_dir) if e.is_dir(follow_symlinks=False)]
        failed = {d for d in dirs if os.path.lexists(os.path.join(releases_dir, d, "FAILED"))}
        protect = set(p["protect"]) | pointed_at(p["app_root"]) | {release}
        removed = [
            {"path": os.path.join(releases_dir, d), "reason": why}
            for d, why in plan_prune(dirs, failed, p["keep"], protect)
        ]

    if not module.check_mode:
        for path in (p["log_path"], p["fact_path"]):
            os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        with open(p["log_path"], "a", encoding="utf-8") as fh:
            fh.write(json.dumps(line) + "\n")
        os.chmod(p["log_path"], 0o644)
        current = None
        if os.path.exists(p["fact_path"]):
            with open(p["fact_path"], encoding="utf-8") as fh:
                current = fh.read()
        if current != fact_text:
            write_atomic(p["fact_path"], fact_text, 0o644)
        for item in removed:
            shutil.rmtree(item["path"])
    module.exit_json(
        changed=True,  # a line is appended to the log on every call
        serving=release,
        revision=revision,
        line=line,
        fact=fact[p["app"]][name],
        removed=removed,
    )


if __name__ == "__main__":
    main()
