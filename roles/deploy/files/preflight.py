# The deploy's read-only preflight on one host, run there as `python3 -c` by preflight.yml:
# argv PATH TIMEOUT NAME=HOST:PORT... Prints one JSON line: free MiB under PATH, and for
# each NAME whether HOST:PORT accepted a TCP connection within TIMEOUT seconds (tried again
# every half second until then).
import json
import os
import socket
import sys
import time

path, timeout, targets = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
stat = os.statvfs(path)
result = {"free_mb": stat.f_bavail * stat.f_frsize // (1024 * 1024), "answers": {}}
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
print(json.dumps(result))
