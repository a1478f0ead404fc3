# Run by roles/blue_green/tasks/confirm.yml on a load balancer as
#   python3 -c <this file> URL COUNT TIMEOUT RELEASES_JSON
# COUNT requests to URL, one after the other; each is repeated (every 0.5 s) until it answers
# HTTP 200 with a JSON "version" in RELEASES, or TIMEOUT seconds have passed for it. Prints
# {"answers": [{"status": ..., "version": ...}, ...], "wrong": [...]}, where wrong lists the
# status of each last answer that was not 200 (-1: no HTTP answer) and the version of each
# 200 that named another release. Always exits 0: the task after it judges.
import http.client
import json
import sys
import time
from urllib.parse import urlsplit

url, count, timeout, releases = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), json.loads(sys.argv[4])
target = urlsplit(url)  # http://127.0.0.1:PORT/PATH: the load balancer on this host


def ask():
    connection = http.client.HTTPConnection(target.hostname, target.port or 80, timeout=5)
    try:
        connection.request("GET", target.path or "/")
        response = connection.getresponse()
        status, body = response.status, response.read()
    except (OSError, http.client.HTTPException) as exc:
        return {"status": -1, "version": "", "error": str(exc)[:200]}
    finally:
        connection.close()
    if status != 200:
        return {"status": status, "version": ""}
    try:
        version = json.loads(body).get("version", "")
    except (ValueError, AttributeError):
        version = ""
    return {"status": status, "version": version if isinstance(version, str) else ""}


answers = []
for _ in range(count):
    deadline = time.monotonic() + timeout
    while True:
        answer = ask()
        if (answer["status"] == 200 and answer["version"] in releases) or time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    answers.append(answer)
wrong = [a["status"] for a in answers if a["status"] != 200]
wrong += [a["version"] for a in answers if a["status"] == 200 and a["version"] not in releases]
print(json.dumps({"answers": answers, "wrong": wrong}))
