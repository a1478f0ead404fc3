"""Per task of an ansible-playbook log (with ansible.posix.profile_tasks): seconds and where it ran.

    .venv/bin/python bench/scale/tasks.py LOG [--top 25] [--grep TEXT]

For each task, in the order run: its wall time (profile_tasks' timestamp on the next task
header), how many hosts reported a result, and how many of those results came from the
controller (`host -> localhost`, delegated). A task run once for all hosts (run_once or a
single delegation) shows 1 result; one run per host shows one per host. Used by
docs/benchmarks.md ("Scale: which steps run per host") to show what the deploy does once.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

HEADER = re.compile(r"^(TASK|RUNNING HANDLER) \[(?P<name>.*)\] \*+$")
TIMING = re.compile(r"\((?P<prev>\d+):(?P<pm>\d\d):(?P<ps>\d\d\.\d+)\)\s+\d+:\d\d:\d\d\.\d+ \*+\s*$")
RESULT = re.compile(r"^(ok|changed|skipping|fatal|failed): \[(?P<host>[^\]]+)\]")
PLAY = re.compile(r"^PLAY \[(?P<name>.*)\] \*+$")


def parse(text: str) -> list[dict]:
    tasks: list[dict] = []
    play = ""
    for line in text.splitlines():
        if m := PLAY.match(line):
            play = m["name"]
            continue
        if m := HEADER.match(line):
            tasks.append({"play": play, "task": m["name"], "seconds": 0.0, "hosts": set(), "controller": set()})
            continue
        if (m := TIMING.search(line)) and len(tasks) >= 2:
            # The duration printed on a task's header line is the previous task's.
            tasks[-2]["seconds"] = int(m["prev"]) * 3600 + int(m["pm"]) * 60 + float(m["ps"])
            continue
        if tasks and (m := RESULT.match(line)) and not line.startswith("skipping"):
            host = m["host"]
            tasks[-1]["hosts"].add(host.split(" -> ")[0])
            if "-> localhost" in host:
                tasks[-1]["controller"].add(host.split(" -> ")[0])
    return tasks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log")
    parser.add_argument("--top", type=int, default=25, help="the longest tasks (0: all, in run order)")
    parser.add_argument("--grep", help="only tasks whose name contains this")
    args = parser.parse_args()
    tasks = [t for t in parse(Path(args.log).read_text()) if not args.grep or args.grep in t["task"]]
    total = sum(t["seconds"] for t in tasks)
    shown = sorted(tasks, key=lambda t: -t["seconds"])[: args.top] if args.top else tasks
    print(f"{'seconds':>8} {'hosts':>5} {'ctrl':>4}  task  (play)")
    for t in shown:
        print(f"{t['seconds']:>8.2f} {len(t['hosts']):>5} {len(t['controller']):>4}  {t['task']}  ({t['play']})")
    print(f"{total:>8.2f}  in {len(tasks)} tasks")


if __name__ == "__main__":
    main()
