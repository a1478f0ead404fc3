#!/usr/bin/python
# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: deploy_host_state
short_description: Read what a deploy needs to know about one host before anything changes
version_added: "0.2.0"
description:
  - Reads, in one module run and without changing anything, what the deploy role's state step
    needs on a host - what the release pointer serves, whether a run was cut short there, free
    space, whether the database and the broker answer from there, and the platform a virtualenv
    built there depends on.
  - RV(pointer) is the target of the symbolic link O(pointer) and RV(revision) the C(REVISION)
    file of that release.
  - RV(progress) is the progress note O(progress) that an activation leaves until the host is back
    into the load balancer; a note that cannot be read still says a run was cut short (an empty dict).
  - Each of O(reach) is tried (a TCP connection) again every half second until it accepts one
    or O(timeout) seconds have passed.
  - RV(platform) names the OS (os-release C(ID) and C(VERSION_ID)), the machine, libc and the
    interpreter the deploy makes virtualenvs with (C(/usr/bin/python3) - its real path, version and
    ABI tag). Hosts with the same string can run a virtualenv built on any of them.
author: opsbook engineers (@opsbook)
options:
  pointer:
    description: The release pointer (C(<app_root>/current) or a blue-green slot's).
    type: path
    required: true
  app_root:
    description: The app's root directory; RV(free_mb) is measured there.
    type: path
    required: true
  wheelhouse:
    description: A wheelhouse directory whose C(.complete) marker RV(wheelhouse) reports; none when empty.
    type: path
    default: ""
  progress:
    description: The activation's progress note; none when empty.
    type: path
    default: ""
  reach:
    description: Services that must accept a TCP connection from this host (the preflight).
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: The key in RV(answers).
        type: str
        required: true
      host:
        description: Host name or address.
        type: str
        required: true
      port:
        description: TCP port.
        type: int
        required: true
  timeout:
    description: Seconds each of O(reach) is given to accept a connection.
    type: float
    default: 10
attributes:
  check_mode:
    support: full
    description: The module only reads; it does the same in check mode.
  diff_mode:
    support: none
    description: Nothing is written; there is no diff.
seealso:
  - module: opsbook.webstack.deploy_activate
  - module: opsbook.webstack.deploy_record
"""

EXAMPLES = r"""
- name: Read what the release pointer serves, and the preflight
  opsbook.webstack.deploy_host_state:
    pointer: /srv/journal/current
    app_root: /srv/journal
    progress: /var/lib/opsbook/journal-current.progress
    reach:
      - {name: database, host: db1, port: 5432}
      - {name: broker, host: db1, port: 6379}
    timeout: 10
  register: deploy_register_state
"""

RETURN = r"""
pointer:
  description: The target of the link O(pointer) (C(releases/<release>)); null when it is not a link.
  returned: always
  type: str
  sample: releases/20261206T081500Z-v2
revision:
  description: The C(REVISION) of the release O(pointer) serves; empty when unreadable.
  returned: always
  type: str
  sample: 4f1c2e9d
wheelhouse:
  description: Whether O(wheelhouse)C(/.complete) exists (false when O(wheelhouse) is empty).
  returned: always
  type: bool
free_mb:
  description: Free MiB under O(app_root); null when it does not exist yet.
  returned: always
  type: int
  sample: 10240
progress:
  description: The progress note (C(release), C(previous), C(since)); null when there is none.
  returned: always
  type: dict
  sample: {"release": "20261206T081500Z-v2", "previous": "20261205T101500Z-v1", "since": "2026-12-06T08:20:00Z"}
answers:
  description: Per name of O(reach), whether it accepted a connection within O(timeout).
  returned: always
  type: dict
  sample: {"database": true, "broker": false}
errors:
  description: Per name of O(reach) that did not answer, the last error.
  returned: when one of O(reach) did not answer
  type: dict
  sample: {"broker": "[Errno 111] Connection refused"}
platform:
  description: OS, machine, libc and the virtualenv interpreter, as one string.
  returned: always
  type: str
  sample: debian-12 x86_64 glibc 2.36 /usr/bin/python3.11 3.11.2 cpython-311 cpython-311-x86_64-linux-gnu
"""

import json
import os
import platform
import socket
import subprocess
import sys
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.opsbook.webstack.plugins.module_utils.releases import served

PROBE = (
    "import platform, sys, sysconfig;"
    "print(platform.python_version(), sys.implementation.cache_tag, sysconfig.get_config_var('SOABI'))"
)


def progress_note(path: str):
    """The note's content; {} when it cannot be read (a run was still cut short); None without one."""
    if not path or not os.path.lexists(path):
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            note = json.load(fh)
    except (OSError, ValueError):
        return {}
    return note if isinstance(note, dict) else {}


def free_mb(root: str):
    if not os.path.isdir(root):
        return None
    stat = os.statvfs(root)
    return stat.f_bavail * stat.f_frsize // (1024 * 1024)


def reach(host: str, port: int, timeout: float):
    """None when host:port accepts a connection within timeout seconds, else the last error."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=max(0.5, deadline - time.monotonic())):
                return None
        except OSError as exc:
            if time.monotonic() >= deadline:
                return str(exc)
            time.sleep(0.5)


def os_release() -> str:
    fields = {}
    for path in ("/etc/os-release", "/usr/lib/os-release"):
        try:
            with open(path, encoding="utf-8") as fh:
                for line in fh:
                    key, sep, value = line.strip().partition("=")
                    if sep:
                        fields[key] = value.strip("\"'")
            break
        except OSError:
            continue
    return f"{fields.get('ID', 'unknown')}-{fields.get('VERSION_ID', '')}"


def interpreter(path: str = "/usr/bin/python3") -> str:
    """The real path, version and ABI of the interpreter the deploy makes virtualenvs with."""
    real = os.path.realpath(path)
    if not os.path.exists(real):
        return f"{path} missing"
    if real == os.path.realpath(sys.executable):
        import sysconfig

        return f"{real} {platform.python_version()} {sys.implementation.cache_tag} {sysconfig.get_config_var('SOABI')}"
    try:
        out = subprocess.run([path, "-c", PROBE], capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        out = "unreadable"
    return f"{real} {out.strip()}"


def platform_key() -> str:
    libc = " ".join(platform.libc_ver()).strip() or "unknown-libc"
    return f"{os_release()} {platform.machine()} {libc} {interpreter()}"


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            pointer=dict(type="path", required=True),
            app_root=dict(type="path", required=True),
            wheelhouse=dict(type="path", default=""),
            progress=dict(type="path", default=""),
            reach=dict(
                type="list",
                elements="dict",
                default=[],
                options=dict(
                    name=dict(type="str", required=True),
                    host=dict(type="str", required=True),
                    port=dict(type="int", required=True),
                ),
            ),
            timeout=dict(type="float", default=10.0),
        ),
        supports_check_mode=True,
    )
    p = module.params
    target, revision = served(p["pointer"])
    result = {
        "changed": False,
        "pointer": target,
        "revision": revision,
        "wheelhouse": bool(p["wheelhouse"]) and os.path.exists(os.path.join(p["wheelhouse"], ".complete")),
        "free_mb": free_mb(p["app_root"]),
        "progress": progress_note(p["progress"]),
        "answers": {},
    }
    for service in p["reach"]:
        error = reach(service["host"], service["port"], p["timeout"])
        result["answers"][service["name"]] = error is None
        if error is not None:
            result.setdefault("errors", {})[service["name"]] = error
    result["platform"] = platform_key()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
