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
    repeated every half second until its answer is healthy and from one of O(releases), or
    O(timeout) seconds have passed for it.
  - An answer is judged by the collection's one rule of healthy (module_utils/health.py, the same
    as the deploy gate, the restore gate and health.yml) with O(health_expect) and
    O(version_source); with O(version_source=none) the release cannot be told and only health is
    judged.
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
  health_expect:
    description:
      - What a healthy answer is (the inventory's C(app_health_expect)) - C(status), C(json_path),
        C(json_value), C(components); empty is opsbook's own shape (HTTP 200, every component ok).
    type: dict
    default: {}
  version_source:
    description:
      - Where an answer names its release (the inventory's C(app_version_source)) - C(json:<path>),
        C(header:<name>) or C(none). A C(file:) source cannot be read through a load balancer;
        health alone is judged then, as with C(none).
    type: str
    default: json:version
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
  description: >-
    Each request's last answer - C(status) (-1 without an HTTP answer), C(version), C(ok), C(what)
    (the rule's one line), and C(error) without an answer.
  returned: always
  type: list
  elements: dict
  sample:
    - status: 200
      version: 20261206T081500Z-v2
      ok: true
      what: HTTP 200, version 20261206T081500Z-v2; healthy
wrong:
  description: >-
    The status of each last answer that was not healthy (-1 - no HTTP answer), then the version of
    each healthy one that named another release; empty when every answer was right.
  returned: always
  type: list
  elements: raw
  sample: [502, "20261205T101500Z-v1"]
"""

import http.client
import time
from urllib.parse import urlsplit

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.opsbook.webstack.plugins.module_utils.health import judge, rule_problem


def ask(host: str, port: int, path: str, expect: dict, source: str, releases) -> dict:
    connection = http.client.HTTPConnection(host, port, timeout=5)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        status, body, headers = response.status, response.read(), dict(response.getheaders())
    except (OSError, http.client.HTTPException) as exc:
        status, body, headers, error = None, b"", {}, str(exc)[:200]
    else:
        error = None
    finally:
        connection.close()
    seen = judge(status, body, headers, expect, source, sorted(releases))
    answer = {"status": -1 if status is None else status, "version": seen["version"] or "", "ok": seen["ok"]}
    answer.update({"healthy": seen["healthy"], "what": seen["what"]})
    if error:
        answer["error"] = error
    return answer


def confirm(url: str, count: int, timeout: float, releases, expect=None, source="json:version") -> dict:
    target = urlsplit(url)
    host, port, path = target.hostname, target.port or 80, target.path or "/"
    answers = []
    for _request in range(count):
        deadline = time.monotonic() + timeout
        while True:
            answer = ask(host, port, path, expect or {}, source, releases)
            if answer["ok"] or time.monotonic() >= deadline:
                break
            time.sleep(0.5)
        answers.append(answer)
    wrong = [a["status"] for a in answers if not a["healthy"]]
    wrong += [a["version"] for a in answers if a["healthy"] and not a["ok"]]
    for answer in answers:
        del answer["healthy"]
    return {"answers": answers, "wrong": wrong}


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            url=dict(type="str", required=True),
            count=dict(type="int", default=4),
            timeout=dict(type="float", default=10.0),
            releases=dict(type="list", elements="str", required=True),
            health_expect=dict(type="dict", default={}),
            version_source=dict(type="str", default="json:version"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    target = urlsplit(p["url"])
    if target.scheme != "http" or not target.hostname:
        module.fail_json(msg=f"url must be a plain http:// URL with a host (got {p['url']!r})")
    if p["count"] < 1:
        module.fail_json(msg=f"count must be at least 1 (got {p['count']})")
    problem = rule_problem(p["health_expect"], p["version_source"], "health_expect", "version_source")
    if problem:
        module.fail_json(msg=problem)
    # A file: source is not read through a load balancer: judge() checks health only then.
    result = confirm(p["url"], p["count"], p["timeout"], set(p["releases"]), p["health_expect"], p["version_source"])
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
