# Marks one server of an nginx upstream file down (out) or not (in), run on the load balancer
# as `python3 -c` by lb.yml: argv FILE HOST PORT out|in. On a change: the file is replaced
# atomically, `nginx -t` checks the whole configuration and nginx reloads gracefully; when
# the check fails the old file is put back and nothing reloads (exit 2). Prints `changed`
# or `unchanged`.
import os
import re
import subprocess
import sys
import tempfile

path, host, port, state = sys.argv[1:5]
with open(path, encoding="utf-8") as fh:
    old = fh.read()
server = re.compile(r"^(\s*server\s+" + re.escape(host) + ":" + re.escape(port) + r"\b[^;]*?)(\s+down)?;", re.M)
if not server.search(old):
    sys.exit(f"no `server {host}:{port}` line in {path}")
new = server.sub(lambda m: m.group(1) + (" down;" if state == "out" else ";"), old)
if new == old:
    print("unchanged")
    sys.exit(0)


def replace(content):
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".opsbook-")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(content)
    info = os.stat(path)
    os.chmod(tmp, info.st_mode & 0o7777)
    os.chown(tmp, info.st_uid, info.st_gid)
    os.replace(tmp, path)


replace(new)
check = subprocess.run(["nginx", "-t", "-q"], capture_output=True, text=True, check=False)
if check.returncode != 0:
    replace(old)
    print(check.stderr.strip(), file=sys.stderr)
    sys.exit(2)
subprocess.run(["systemctl", "reload", "nginx.service"], check=True)
print("changed")
