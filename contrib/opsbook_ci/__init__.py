"""Run a playbook through ansible-runner for CI: a JUnit XML file and a JSON summary from its events.

    PYTHONPATH=contrib python -m opsbook_ci playbooks/health.yml -i inventories/production \\
        --junit reports/health.xml --summary reports/health.json

One JUnit test case per host and task that ran (ok, changed, failed or unreachable; skipped
tasks did not run), grouped in one test suite per play. A failed task is a <failure> whose
message names the task and carries Ansible's message; an unreachable host is an <error>. A
failure that the play rescued (block/rescue) or ignored (ignore_errors) passes, its message kept
in <system-out>. The summary holds, per host, the ok/changed/failed/unreachable/skipped/rescued/
ignored counts of the recap, the set_stats values (what AWX calls artifacts) and the failures.

Secrets: only a result's `msg` (or, without one, the tail of its stderr) is read, never the
task's arguments; a result of a no_log task is censored by Ansible before ansible-runner sees it,
and stays so. Extra variables go to the private data directory's env/extravars (0600), which
ansible-runner passes as `-e @file`: never in argv, where its `command` artifact would keep them.

The exit status is ansible-playbook's (0 when the run succeeded; 2 failed hosts, 4 unreachable,
...), and 1 when the run ended otherwise without one (timeout, cancel). docs/ci.md.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

TASK_EVENTS = {"runner_on_ok", "runner_on_failed", "runner_on_unreachable", "runner_on_skipped"}
MESSAGE_LIMIT = 2000


@dataclass
class Case:
    """One host x task that ran."""

    play: str
    task: str
    host: str
    status: str  # ok, changed, failed, ignored, rescued, unreachable
    seconds: float = 0.0
    message: str = ""
    order: int = 0


@dataclass
class Outcome:
    """What a run produced, read from its events."""

    playbook: str
    status: str
    rc: int
    cases: list[Case] = field(default_factory=list)
    hosts: dict[str, dict[str, int]] = field(default_factory=dict)
    set_stats: dict[str, Any] = field(default_factory=dict)

    @property
    def failures(self) -> list[Case]:
        return [c for c in self.cases if c.status in {"failed", "unreachable"}]

    @property
    def exit_code(self) -> int:
        if self.rc:
            return self.rc
        return 0 if self.status == "successful" else 1


def result_message(res: Any) -> str:
    """The message of a task result: `msg`, the failed loop items' messages, or stderr's tail.

    Never the module arguments (`invocation`) or the command line (`cmd`).
    """
    if not isinstance(res, dict):
        return ""
    if res.get("censored"):
        return str(res["censored"])
    parts = []
    if res.get("msg"):
        parts.append(str(res["msg"]))
    for item in res.get("results") or []:
        if isinstance(item, dict) and (item.get("failed") or item.get("unreachable")):
            parts.append(result_message(item))
    if not parts and res.get("stderr"):
        parts.append(str(res["stderr"])[-MESSAGE_LIMIT:])
    message = " | ".join(p for p in parts if p)
    return message if len(message) <= MESSAGE_LIMIT else message[: MESSAGE_LIMIT - 3] + "..."


def read_events(events: list[dict[str, Any]], playbook: str, status: str, rc: int) -> Outcome:
    """Test cases, recap and set_stats from ansible-runner's events (in the order they were emitted)."""
    outcome = Outcome(playbook=playbook, status=status, rc=rc)
    for order, event in enumerate(events):
        kind = event.get("event")
        data = event.get("event_data") or {}
        if kind in TASK_EVENTS and kind != "runner_on_skipped":
            res = data.get("res") or {}
            if kind == "runner_on_unreachable":
                state = "unreachable"
            elif kind == "runner_on_failed":
                state = "ignored" if data.get("ignore_errors") else "failed"
            else:
                state = "changed" if isinstance(res, dict) and res.get("changed") else "ok"
            outcome.cases.append(
                Case(
                    play=str(data.get("play") or ""),
                    task=str(data.get("task") or data.get("task_action") or ""),
                    host=str(data.get("host") or ""),
                    status=state,
                    seconds=float(data.get("duration") or 0.0),
                    message=result_message(res) if state != "ok" and state != "changed" else "",
                    order=order,
                )
            )
        elif kind == "playbook_on_stats":
            counts = {
                "ok": "ok",
                "changed": "changed",
                "failures": "failed",
                "dark": "unreachable",
                "skipped": "skipped",
                "rescued": "rescued",
                "ignored": "ignored",
            }
            for key, name in counts.items():
                for host, n in (data.get(key) or {}).items():
                    outcome.hosts.setdefault(host, dict.fromkeys(counts.values(), 0))[name] = n
            outcome.set_stats = data.get("artifact_data") or {}
    _mark_rescued(outcome)
    return outcome


def _mark_rescued(outcome: Outcome) -> None:
    """A failure the play rescued: its host ran on and the recap counts a rescue for it."""
    for i, case in enumerate(outcome.cases):
        if case.status != "failed" or not outcome.hosts.get(case.host, {}).get("rescued"):
            continue
        if any(later.host == case.host for later in outcome.cases[i + 1 :]):
            case.status = "rescued"


def junit_xml(outcome: Outcome) -> ET.ElementTree:
    root = ET.Element("testsuites", name=outcome.playbook)
    suites: dict[str, ET.Element] = {}
    seen: dict[tuple[str, str, str], int] = {}
    for case in outcome.cases:
        suite = suites.get(case.play)
        if suite is None:
            suite = suites[case.play] = ET.SubElement(root, "testsuite", name=case.play or outcome.playbook)
        key = (case.play, case.host, case.task)
        seen[key] = seen.get(key, 0) + 1
        name = case.task if seen[key] == 1 else f"{case.task} ({seen[key]})"
        element = ET.SubElement(suite, "testcase", classname=case.host, name=name, time=f"{case.seconds:.3f}")
        if case.status == "failed":
            failure = ET.SubElement(element, "failure", message=f"{case.task}: {case.message}", type="failed")
            failure.text = f"Task '{case.task}' failed on {case.host}: {case.message}"
        elif case.status == "unreachable":
            error = ET.SubElement(element, "error", message=f"{case.task}: {case.message}", type="unreachable")
            error.text = f"{case.host} was unreachable at task '{case.task}': {case.message}"
        elif case.status in {"ignored", "rescued"}:
            ET.SubElement(element, "system-out").text = f"failed, {case.status}: {case.message}"
    for suite in root:
        cases = list(suite)
        suite.set("tests", str(len(cases)))
        suite.set("failures", str(sum(1 for c in cases if c.find("failure") is not None)))
        suite.set("errors", str(sum(1 for c in cases if c.find("error") is not None)))
        suite.set("time", f"{sum(float(c.get('time', 0)) for c in cases):.3f}")
    root.set("tests", str(len(outcome.cases)))
    root.set("failures", str(sum(1 for c in outcome.cases if c.status == "failed")))
    root.set("errors", str(sum(1 for c in outcome.cases if c.status == "unreachable")))
    ET.indent(root)
    return ET.ElementTree(root)


def summary(outcome: Outcome) -> dict[str, Any]:
    return {
        "playbook": outcome.playbook,
        "status": outcome.status,
        "rc": outcome.rc,
        "hosts": outcome.hosts,
        "set_stats": outcome.set_stats,
        "failures": [
            {"host": c.host, "play": c.play, "task": c.task, "status": c.status, "message": c.message}
            for c in outcome.failures
        ],
    }


def parse_extra_vars(values: list[str]) -> tuple[dict[str, Any], list[str]]:
    """-e values: key=value pairs and JSON/YAML mappings are merged; @file is passed on as is."""
    merged: dict[str, Any] = {}
    files: list[str] = []
    for value in values:
        if value.startswith("@"):
            files.append("@" + str(Path(value[1:]).resolve()))
        elif value.lstrip().startswith("{"):
            data = yaml.safe_load(value)
            if not isinstance(data, dict):
                raise ValueError(f"-e {value!r}: not a mapping")
            merged.update(data)
        else:
            for pair in value.split():
                key, sep, val = pair.partition("=")
                if not sep or not key:
                    raise ValueError(f"-e {pair!r}: expected key=value, a JSON mapping or @file")
                merged[key] = val
    return merged, files


def run(
    playbook: Path,
    inventories: list[Path],
    extra_vars: dict[str, Any] | None = None,
    extra_var_files: list[str] | None = None,
    private_data_dir: Path | None = None,
    limit: str = "",
    tags: str = "",
    check: bool = False,
    ident: str = "ci",
    quiet: bool = True,
    envvars: dict[str, str] | None = None,
) -> Outcome:
    """Run the playbook with ansible_runner.run and read its events."""
    import ansible_runner  # imported here: the readers above work without it

    keep = private_data_dir is not None
    pd = Path(private_data_dir or tempfile.mkdtemp(prefix="opsbook-ci-"))
    try:
        env_dir = pd / "env"
        env_dir.mkdir(parents=True, exist_ok=True)
        extravars = env_dir / "extravars"
        extravars.unlink(missing_ok=True)
        if extra_vars:
            fd = os.open(extravars, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(extra_vars, handle)
        cmdline = [*(f"-e {f}" for f in extra_var_files or [])]
        if check:
            cmdline.append("--check")
        runner = ansible_runner.run(
            private_data_dir=str(pd),
            playbook=str(Path(playbook).resolve()),
            inventory=[str(Path(i).resolve()) for i in inventories] or None,
            limit=limit or None,
            tags=tags or None,
            cmdline=" ".join(cmdline) or None,
            ident=ident,
            quiet=quiet,
            envvars=envvars,
        )
        return read_events(list(runner.events), Path(playbook).name, runner.status, runner.rc or 0)
    finally:
        if not keep:
            shutil.rmtree(pd, ignore_errors=True)


def write(outcome: Outcome, junit: Path | None, summary_path: Path | None) -> None:
    if junit:
        junit.parent.mkdir(parents=True, exist_ok=True)
        junit_xml(outcome).write(junit, encoding="utf-8", xml_declaration=True)
    if summary_path:
        summary_path.parent.mkdir(parents=True, exist_ok=True)
        summary_path.write_text(json.dumps(summary(outcome), indent=2, sort_keys=True, default=str) + "\n")
