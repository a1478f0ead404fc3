# What the deploy reads on one host before anything changes, run there as `python3 -c` by
# state.yml: argv POINTER WHEELHOUSE APP_ROOT TIMEOUT PROGRESS NAME=HOST:PORT... Prints one JSON line:
# - pointer: the release directory POINTER links to (null when it is not a link), and
#   revision: that release's REVISION ('' when unreadable);
# - wheelhouse: whether WHEELHOUSE/.complete exists (false when WHEELHOUSE is '');
# - free_mb: free MiB under APP_ROOT (null when it does not exist yet);
# - progress: the progress note PROGRESS that an activation of this pointer leaves until the
#   host is back into the load balancer (activate.yml), {"release", "previous", ...}; null
#   when there is none (no run was cut short) or PROGRESS is '';
# - answers: for each NAME whether HOST:PORT accepted a TCP connection within TIMEOUT
#   seconds (tried again every half second until then), and errors for the ones that did not;
# - platform: what a virtualenv built here depends on, as one string: the OS (os-release ID
#   and VERSION_ID), the machine, libc, and the interpreter the deploy builds with
#   (/usr/bin/python3: its real path, version and ABI tag). Hosts with the same string can
#   run a virtualenv built on any of them (deploy_build: once, install.yml).
import json
import os
import platform
import socket
import subprocess
import sys
import time

pointer, wheelhouse, root, timeout, progress = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5]
targets = sys.argv[6:]
result = {"pointer": None, "revision": "", "wheelhouse": False, "free_mb": None, "progress": None, "answers": {}}
if os.path.islink(pointer):
    result["pointer"] = os.readlink(pointer)
    try:
        with open(os.path.join(pointer, "REVISION"), encoding="utf-8") as fh:
            result["revision"] = fh.read().strip()
    except OSError:
        pass
result["wheelhouse"] = bool(wheelhouse) and os.path.exists(os.path.join(wheelhouse, ".complete"))
if progress and os.path.lexists(progress):
    # A note that cannot be read still says a run was cut short: previous unknown ('').
    try:
        with open(progress, encoding="utf-8") as fh:
            note = json.load(fh)
        result["progress"] = note if isinstance(note, dict) else {}
    except (OSError, ValueError):
        result["progress"] = {}
if os.path.isdir(root):
    stat = os.statvfs(root)
    result["free_mb"] = stat.f_bavail * stat.f_frsize // (1024 * 1024)
for target in targets:
    name, address = target.split("=", 1)
    deadline = time.monotonic() + timeout
    host, port = address.rsplit(":", 1)
    while True:
        try:
            with socket.create_connection((host, int(port)), timeout=max(0.5, deadline - time.monotonic())):
                result["answers"][name] = True
                break
        except OSError as exc:
            if time.monotonic() >= deadline:
                result["answers"][name] = False
                result.setdefault("errors", {})[name] = str(exc)
                break
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


PROBE = (
    "import platform, sys, sysconfig;"
    "print(platform.python_version(), sys.implementation.cache_tag, sysconfig.get_config_var('SOABI'))"
)


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


libc = " ".join(platform.libc_ver()).strip() or "unknown-libc"
result["platform"] = f"{os_release()} {platform.machine()} {libc} {interpreter()}"
print(json.dumps(result))
