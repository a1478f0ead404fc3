#!/usr/bin/python
# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: deploy_activate
short_description: Make a release live on a host - switch, restart drained workers and web, gate on health
version_added: "0.1.0"
description:
  - Runs the steps of a deploy that make an installed release live on one host, in order, as
    one module run - C(switch), C(restart), C(health) - or the ones named in O(steps). The
    deploy role calls it once per host, or in pieces when a user hook sits between two steps.
  - C(switch) points O(pointer) at C(releases/<release>) under O(app_root) atomically - a new
    link under a temporary name renamed over the pointer (rename(2) replaces it in one step).
    It refuses a release without C(venv/bin/python) (missing or unfinished; O(release_marker)) and changes nothing.
  - C(restart) restarts the O(beat_units) one by one, then the O(rq_units) in one C(systemctl restart) -
    an RQ worker's stop is RQ's warm shutdown (no new job, its running job finishes, within the
    unit's C(TimeoutStopSec)), so the restart returns once every running job is done; then it
    drains the O(workers) that are running
    (Celery C(cancel_consumer) for every queue they consume, then it waits until they run no
    task, up to O(drain_timeout), a warning past it); then restarts the workers and O(web_unit) in one
    C(systemctl restart), one systemd job transaction. A worker's stop is Celery's warm shutdown.
  - C(health) asks O(health_url) every second, up to O(health_timeout) seconds, until
    O(health_count) answers in a row are HTTP 200 with C(version) O(health_release) (or one of
    O(health_also)) and every
    component C(ok), and every unit in O(health_units) is active. Run on a load balancer with
    only this step, it gates through it (O(health_count) - the app hosts, twice).
  - A failed step stops the run; RV(step) names it. The steps done before it stay done; the
    deploy role rolls the host back.
  - Draining needs Celery, so with O(workers) the module runs with the release's Python (the
    deploy role sets C(ansible_python_interpreter) to C(<app_root>/releases/<release>/venv/bin/python)).
author: opsbook engineers (@opsbook)
options:
  steps:
    description: The steps to run, in this order whatever order they are given in.
    type: list
    elements: str
    choices: [switch, restart, health]
    default: [switch, restart, health]
  app_root:
    description: The app's root directory (C(releases/)). Required for C(switch).
    type: path
  pointer:
    description: The release pointer to switch (C(<app_root>/current) or a blue-green slot's). Required for C(switch).
    type: path
  release:
    description: The release directory name under C(<app_root>/releases). Required for C(switch).
    type: str
  release_marker:
    description:
      - The file, relative to the release, whose presence makes a release complete; C(switch) refuses a
        release without it. The virtualenv's interpreter under systemd; under C(app_runtime=compose) the
        release's rendered C(compose.yml) (the release has no virtualenv, the image holds the code).
    type: str
    default: venv/bin/python
    version_added: 0.4.0
  beat_units:
    description: Celery beat units, restarted first by C(restart).
    type: list
    elements: str
    default: []
  rq_units:
    description:
      - RQ worker units (C(rq worker), with or without C(--with-scheduler)), restarted after O(beat_units) and
        before the Celery O(workers) are drained. Their units send SIGTERM to the worker only (C(KillMode=mixed)).
    type: list
    elements: str
    default: []
  workers:
    description: Celery worker units; C(restart) drains the running ones, then restarts them all.
    type: list
    elements: dict
    default: []
    suboptions:
      unit:
        description: The systemd unit.
        type: str
        required: true
      node:
        description: The worker's node name (C(<name>@<host>)), as the drain addresses it.
        type: str
        required: true
  web_unit:
    description: The web unit, restarted with the workers; none when empty.
    type: str
    default: ""
  broker_url:
    description: The Celery broker URL, for the drain. Required when O(workers) is set.
    type: str
  accept_content:
    description:
      - Content types the app's workers accept (C(app_celery_accept_content)); the drain's control
        messages are written in the first one, so a worker that accepts only C(pickle) answers.
    type: list
    elements: str
    default: [json]
    version_added: 0.3.0
  drain_timeout:
    description: Seconds to wait for the running tasks of drained workers.
    type: float
    default: 60
  celery_timeout:
    description: Seconds to wait for the workers' replies to each broadcast of the drain.
    type: float
    default: 1.0
  health_url:
    description: URL of the health endpoint; empty - units only.
    type: str
    default: ""
  health_release:
    description: The release the health endpoint must report as C(version). Default O(release).
    type: str
  health_also:
    description:
      - Other versions the health step accepts besides O(health_release), for a gate through a load
        balancer whose hosts run one revision under several release names (hosts a deploy found
        already on the revision keep the release they run).
    type: list
    elements: str
    default: []
  health_count:
    description: Healthy answers needed in a row (round robin through a load balancer).
    type: int
    default: 1
  health_units:
    description: Units that must be active for C(health) to pass.
    type: list
    elements: str
    default: []
  health_expect:
    description:
      - What a healthy answer is (C(app_health_expect)) - C(status) (a code or a list, default 200),
        optionally C(json_path) and C(json_value), and C(components) (default true - every value of a
        JSON C(components) mapping must be C(ok)). The rule is C(module_utils/health.py)'s C(judge),
        the one every gate of the collection uses.
    type: dict
    default: {}
    version_added: 0.3.0
  health_version_source:
    description:
      - Where the served release is read (C(app_version_source)) - C(json:<dotted path>), C(header:<Name>),
        C(file:<path>) (read from that file in the directory the process serving O(health_url)'s port runs
        from, on an app host's own gate - one with O(web_unit); a gate without it checks health only), or
        C(none) (the app reports no version - the step then checks health only, and says so in
        C(version_statement) of RV(health)).
    type: str
    default: json:version
    version_added: 0.3.0
  health_timeout:
    description: Seconds C(health) waits for a pass, asking again every second.
    type: float
    default: 60
notes:
  - Check mode is not supported; the deploy role skips the rollout in check mode and reports.
"""

EXAMPLES = r"""
- name: Make release 20261130T101500Z live on this host
  opsbook.webstack.deploy_activate:
    app_root: /srv/journal
    pointer: /srv/journal/current
    release: 20261130T101500Z
    beat_units: [journal-beat.service]
    workers:
      - unit: journal-worker-default.service
        node: default@app1
    web_unit: journal.service
    broker_url: "{{ broker_url }}"
    health_url: http://127.0.0.1:8000/health/
    health_units: [journal-beat.service, journal-worker-default.service, journal.service]
  vars:
    ansible_python_interpreter: /srv/journal/releases/20261130T101500Z/venv/bin/python

- name: Gate through the load balancer (two app hosts, twice round)
  opsbook.webstack.deploy_activate:
    steps: [health]
    health_url: http://127.0.0.1/health/
    health_release: 20261130T101500Z
    health_count: 4
  delegate_to: lb1
"""

RETURN = r"""
step:
  description: The step that failed (C(switch), C(restart), C(drain), C(health)); empty on success.
  returned: always
  type: str
  sample: health
switched:
  description: Whether C(switch) changed the pointer (false when it already pointed at the release).
  returned: when switch ran
  type: bool
restarted:
  description: The units restarted, in order.
  returned: when restart ran
  type: list
  elements: str
  sample: [journal-beat.service, journal-worker-default.service, journal.service]
drained:
  description: Per drained worker node, whether it ran no task within O(drain_timeout).
  returned: when restart ran
  type: dict
  sample: {"default@app1": true}
health:
  description: >-
    The gate's last look - ok, units (state per unit), status, version and components of the
    last answer, answers (each with C(what), a line saying what it was), and version_statement
    (what the served-version check reads, or that it checks health only with C(none)).
  returned: when health ran
  type: dict
seconds:
  description: Seconds each step took.
  returned: always
  type: dict
  sample: {"switch": 0.001, "restart": 2.1, "health": 0.6}
"""

import time
import urllib.error
import urllib.parse

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.urls import ConnectionError as UrlConnectionError
from ansible.module_utils.urls import open_url
from ansible_collections.opsbook.webstack.plugins.module_utils.activation import (
    StepFailed,
    restart,
    switch,
    systemctl,
)
from ansible_collections.opsbook.webstack.plugins.module_utils.celery_common import protect
from ansible_collections.opsbook.webstack.plugins.module_utils.health import (
    judge,
    rule_problem,
    served_release_file,
    version_source,
    version_statement,
)

STEPS = ("switch", "restart", "health")


# --------------------------------------------------------------------------- health


def unit_states(units: list[str]) -> dict[str, str]:
    if not units:
        return {}
    out = systemctl("is-active", *units).stdout.split()
    # One state per unit, in order; none at all when systemctl cannot answer.
    return {unit: out[i] if i < len(out) else "unknown" for i, unit in enumerate(units)}


def ask(url: str, versions: list[str], expect: dict | None = None, source: str | None = None, on_host=False) -> dict:
    """One answer, judged by the collection's one rule (module_utils/health.py). on_host: this is the
    app host's own gate, so a file: version source is read from the release its web process runs."""
    try:
        # ansible's open_url (proxies from the environment, certificates checked); no .netrc credentials.
        with open_url(url, timeout=10, use_netrc=False) as answer:
            status, body, headers = answer.status, answer.read(), dict(answer.headers.items())
    except urllib.error.HTTPError as exc:
        status, body, headers = exc.code, exc.read(), dict(exc.headers.items()) if exc.headers else {}
    except (OSError, UrlConnectionError) as exc:
        return {"status": None, "version": None, "components": {}, "ok": False, "what": f"no answer ({exc})"}
    kind, path = version_source(source)
    if kind == "file" and on_host:
        served = served_release_file(urllib.parse.urlsplit(url).port or 80, path)
        return judge(status, body, headers, expect, source, versions, served=served)
    return judge(status, body, headers, expect, source, versions)


def gate(
    url: str,
    release: str,
    count: int,
    units: list[str],
    timeout: float,
    also: tuple = (),
    expect: dict | None = None,
    source: str | None = None,
    on_host: bool = False,
) -> dict:
    """Ask until every unit is active and `count` answers in a row are the release (or one of `also`), healthy."""
    versions = [release, *also]

    def healthy(seen: dict) -> bool:
        return seen["ok"]

    deadline = time.monotonic() + timeout
    while True:
        states = unit_states(units)
        answers = []
        for _answer in range(count if url else 0):
            answers.append(ask(url, versions, expect, source, on_host))
            if not healthy(answers[-1]):
                break
        last = answers[-1] if answers else {"status": None, "version": None, "components": {}}
        ok = all(state == "active" for state in states.values())
        ok = ok and (not url or (len(answers) == count and all(healthy(a) for a in answers)))
        if ok or time.monotonic() >= deadline:
            return {
                "ok": ok,
                "units": states,
                "status": last["status"],
                "version": last["version"],
                "components": last["components"],
                "answers": answers,
                "version_statement": version_statement(source),
            }
        time.sleep(1)


def describe_gate(seen: dict, url: str, release: str, timeout: float) -> str:
    parts = []
    if url:
        parts.append(f"answers: {' | '.join(a['what'] for a in seen['answers'])}")
    down = {unit: state for unit, state in seen["units"].items() if state != "active"}
    if down:
        parts.append("units not active: " + ", ".join(f"{unit} {state}" for unit, state in down.items()))
    what = f"serve {release} healthy" if url else "run its units"
    return f"did not {what} within {timeout:g} s: " + "; ".join(parts)


# --------------------------------------------------------------------------- main


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            steps=dict(type="list", elements="str", choices=list(STEPS), default=list(STEPS)),
            app_root=dict(type="path"),
            pointer=dict(type="path"),
            release=dict(type="str"),
            release_marker=dict(type="str", default="venv/bin/python"),
            beat_units=dict(type="list", elements="str", default=[]),
            rq_units=dict(type="list", elements="str", default=[]),
            workers=dict(
                type="list",
                elements="dict",
                default=[],
                options=dict(unit=dict(type="str", required=True), node=dict(type="str", required=True)),
            ),
            web_unit=dict(type="str", default=""),
            broker_url=dict(type="str", no_log=True),
            accept_content=dict(type="list", elements="str", default=["json"]),
            drain_timeout=dict(type="float", default=60.0),
            celery_timeout=dict(type="float", default=1.0),
            health_url=dict(type="str", default=""),
            health_release=dict(type="str"),
            health_also=dict(type="list", elements="str", default=[]),
            health_count=dict(type="int", default=1),
            health_units=dict(type="list", elements="str", default=[]),
            health_timeout=dict(type="float", default=60.0),
            health_expect=dict(type="dict", default={}),
            health_version_source=dict(type="str", default="json:version"),
        ),
        supports_check_mode=False,
    )
    params = module.params
    steps = [step for step in STEPS if step in params["steps"]]
    missing = []
    if "switch" in steps:
        missing += [name for name in ("app_root", "pointer", "release") if not params[name]]
    if "restart" in steps and params["workers"] and not params["broker_url"]:
        missing.append("broker_url")
    release = params["health_release"] or params["release"]
    if "health" in steps:
        if not release:
            missing.append("health_release")
        if params["health_count"] < 1:
            module.fail_json(msg=f"health_count must be at least 1 (got {params['health_count']}); nothing was changed")
        problem = rule_problem(
            params["health_expect"], params["health_version_source"], "health_expect", "health_version_source"
        )
        if problem:
            module.fail_json(msg=f"{problem}; nothing was changed")
    if missing:
        module.fail_json(msg=f"steps {', '.join(steps)} need {', '.join(missing)}; nothing was changed")
    secrets = protect(module, params["broker_url"] or "")

    result = {"changed": False, "step": "", "seconds": {}}
    try:
        for step in steps:
            started = time.monotonic()
            if step == "switch":
                result["switched"] = switch(
                    params["app_root"], params["pointer"], params["release"], params["release_marker"]
                )
                result["changed"] |= result["switched"]
            elif step == "restart":
                try:
                    restart(module, result, secrets)
                finally:
                    result["changed"] |= bool(result["restarted"])
            else:
                url = params["health_url"]
                result["health"] = gate(
                    url,
                    release,
                    params["health_count"],
                    params["health_units"],
                    params["health_timeout"],
                    tuple(params["health_also"]),
                    params["health_expect"],
                    params["health_version_source"],
                    bool(params["web_unit"]),
                )
                if not result["health"]["ok"]:
                    raise StepFailed("health", describe_gate(result["health"], url, release, params["health_timeout"]))
            result["seconds"][step] = round(time.monotonic() - started, 3)
    except StepFailed as exc:
        result["step"] = exc.step
        module.fail_json(msg=str(exc), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
