"""Rank the tasks of a tasklog directory (bench/profile/callback_plugins/tasklog.py) by estimated CPU.

    .venv/bin/python bench/profile/tasks.py /tmp/tasklog [TOP]

The estimate uses what was measured on the 2-core lab (docs/testing.md): every task result on a
host costs the controller about 0.08 CPU-s (a forked worker and the main process's share), a
skipped one about 0.06, and a module run on a host about 0.3 more (Python compiles
Ansible's module_utils at every run). Loop items are module runs; the loop's summary result
is not. Tasks that never leave the controller (assert, set_fact, include_*, ...) cost only the
first part.
"""

from __future__ import annotations

import collections
import json
import sys
from pathlib import Path

CONTROLLER_ONLY = {
    f"ansible.builtin.{name}"
    for name in (
        "assert", "validate_argument_spec", "set_fact", "include_tasks", "include_role", "import_tasks",
        "debug", "group_by", "set_stats", "meta", "add_host", "fail",
    )
}  # fmt: skip


def cost(record: dict, looped: bool) -> float:
    """looped: the task ran items on this host, so this record is the loop's summary."""
    if record["status"] == "item_skipped":
        return 0.0
    if record["status"] == "skipped":
        return 0.06
    if record["action"] in CONTROLLER_ONLY:
        return 0.02 if record["item"] else 0.08
    if record["item"]:
        return 0.3
    return 0.08 if looped else 0.38


def main() -> None:
    if len(sys.argv) not in (2, 3):
        raise SystemExit(__doc__)
    records = []
    for path in Path(sys.argv[1]).glob("*.jsonl"):
        for line in path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                continue  # a line cut by a killed run
    looped = {(r["pb"], r["task"], r["host"]) for r in records if r["item"]}
    total: collections.Counter = collections.Counter()
    statuses: dict = collections.defaultdict(collections.Counter)
    for record in records:
        key = (record["role"] or "-", record["task"][:110])
        total[key] += cost(record, (record["pb"], record["task"], record["host"]) in looped)
        statuses[key][record["status"]] += 1
    print(f"{len(records)} results, estimated {sum(total.values()):.0f} CPU-s")
    for key, seconds in total.most_common(int(sys.argv[2]) if len(sys.argv) == 3 else 40):
        print(f"{seconds:7.1f}  {dict(statuses[key])}  {key[1]}")


if __name__ == "__main__":
    main()
