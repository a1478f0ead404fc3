#!/usr/bin/python
# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: blue_green_confirm
short_description: Ask a load balancer until its answers come from the expected releases
version_added: "0.2.0"
description:
  - Sends O(count) requests to O(url), one after the other, each on a new connection. Each is
    repeated every half second until it answers HTTP 200 with a JSON C(version) in O(releases),
    or O(timeout) seconds have passed for it.
  - Reports every last answer (RV(answers)) and what was wrong (RV(wrong)); it never fails because
    of an answer, so the task after it can judge and say what it expected.
  - The blue_green role runs it on each load balancer after a switch (right after an nginx reload
    the old workers may still finish a few requests to the old slot), one module run for all the
    requests.
author: opsbook engineers (@opsbook)
options:
  url:
    description: The health URL through the load balancer (C(http://127.0.0.1:PORT/health/)); plain HTTP.
    type: str
    required: true
  count:
    description: How many answers must come from O(releases).
    type: int
    default: 4
  timeout:
    description: Seconds each request is repeated for until it answers from O(releases).
    type: float
    default: 10
  releases:
    description: The versions a right answer may report.
    type: list
    elements: str
    required: true
attributes:
  check_mode:
    support: full
    description: The module only reads; it does the same in check mode.
  diff_mode:
    support: none
    description: Nothing is written; there is no diff.
seealso:
  - module: opsbook.webstack.deploy_activate
"""

EXAMPLES = r"""
- name: Ask the load balancer until only the green slot answers
  opsbook.webstack.blue_green_confirm:
    url: http://127.0.0.1:8081/health/
    count: 4
    timeout: 10
    releases: [20261206T081500Z-v2]
  register: blue_green_register_confirm

- name: Only the new slot answers
  ansible.builtin.assert:
    that: blue_green_register_confirm.wrong | length == 0
"""

RETURN = r"""
answers:
  description: Each request's last answer - C(status) (-1 without an HTTP answer), C(version), and C(error) without one.
  returned: always
  type: list
  elements: dict
  sample: [{"status": 200, "version": "20261206T081500Z-v2"}]
wrong:
  description: >-
    The status of each last answer that was not 200 (-1 - no HTTP answer), then the version of each
    200 that named another release; empty when every answer was right.
  returned: always
  type: list
  elements: raw
  sample: [502, "20261205T101500Z-v1"]
"""

import http.client
import json
import time
from urllib.parse import urlsplit

from ansible.module_utils.basic import AnsibleModule


def ask(host: str, port: int, path: str) -> dict:
    connection = http.client.HTTPConnection(host, port, timeout=5)
    try:
        connection.request("GET", path)
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


def confirm(url: str, count: int, timeout: float, releases) -> dict:
    target = urlsplit(url)
    host, port, path = target.hostname, target.port or 80, target.path or "/"
    answers = []
    for _request in range(count):
        deadline = time.monotonic() + timeout
        while True:
            answer = ask(host, port, path)
            if (answer["status"] == 200 and answer["version"] in releases) or time.monotonic() >= deadline:
                break
            time.sleep(0.5)
        answers.append(answer)
    wrong = [a["status"] for a in answers if a["status"] != 200]
    wrong += [a["version"] for a in answers if a["status"] == 200 and a["version"] not in releases]
    return {"answers": answers, "wrong": wrong}


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            url=dict(type="str", required=True),
            count=dict(type="int", default=4),
            timeout=dict(type="float", default=10.0),
            releases=dict(type="list", elements="str", required=True),
        ),
        supports_check_mode=True,
    )
    p = module.params
    target = urlsplit(p["url"])
    if target.scheme != "http" or not target.hostname:
        module.fail_json(msg=f"url must be a plain http:// URL with a host (got {p['url']!r})")
    if p["count"] < 1:
        module.fail_json(msg=f"count must be at least 1 (got {p['count']})")
    module.exit_json(changed=False, **confirm(p["url"], p["count"], p["timeout"], set(p["releases"])))


if __name__ == "__main__":
    main()
