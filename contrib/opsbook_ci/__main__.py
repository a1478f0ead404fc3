"""Command line: PYTHONPATH=contrib python -m opsbook_ci PLAYBOOK -i INVENTORY [--junit F] [--summary F]."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from opsbook_ci import parse_extra_vars, run, write


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m opsbook_ci",
        description="Run a playbook through ansible-runner; write a JUnit XML file and a JSON summary.",
    )
    parser.add_argument("playbook", type=Path, help="playbook file, e.g. playbooks/health.yml")
    parser.add_argument("-i", "--inventory", type=Path, action="append", default=[], help="inventory (repeatable)")
    parser.add_argument(
        "-e", "--extra-vars", action="append", default=[], help="key=value, a JSON mapping or @file (repeatable)"
    )
    parser.add_argument("-l", "--limit", default="", help="host pattern")
    parser.add_argument("-t", "--tags", default="", help="only these tags")
    parser.add_argument("-C", "--check", action="store_true", help="check mode")
    parser.add_argument("--junit", type=Path, help="JUnit XML file to write")
    parser.add_argument("--summary", type=Path, help="JSON summary file to write")
    parser.add_argument(
        "--private-data-dir",
        type=Path,
        help="ansible-runner's private data directory, kept (artifacts/<ident>/ holds the events); default: a "
        "temporary one, removed afterwards",
    )
    parser.add_argument("--ident", default="ci", help="run id under artifacts/ (default: ci)")
    parser.add_argument("-q", "--quiet", action="store_true", help="do not print the playbook's output")
    args = parser.parse_args(argv)

    try:
        extra_vars, files = parse_extra_vars(args.extra_vars)
    except ValueError as e:
        parser.error(str(e))
    if not args.playbook.is_file():
        parser.error(f"playbook {args.playbook} not found")
    outcome = run(
        args.playbook,
        args.inventory,
        extra_vars=extra_vars,
        extra_var_files=files,
        private_data_dir=args.private_data_dir,
        limit=args.limit,
        tags=args.tags,
        check=args.check,
        ident=args.ident,
        quiet=args.quiet,
    )
    write(outcome, args.junit, args.summary)
    failed = len(outcome.failures)
    print(
        f"opsbook_ci: {args.playbook.name} {outcome.status} (rc {outcome.rc}), {len(outcome.cases)} task results, "
        f"{failed} failed"
        + (f"; JUnit {args.junit}" if args.junit else "")
        + (f"; summary {args.summary}" if args.summary else ""),
        file=sys.stderr,
    )
    return outcome.exit_code


if __name__ == "__main__":
    sys.exit(main())
