"""Where the CPU of a run went, by command: BSD process accounting, switched on around a command.

    sudo .venv/bin/python bench/profile/pacct.py run OUT.pacct -- .ci/run
    .venv/bin/python bench/profile/pacct.py report OUT.pacct [TOP]

The kernel writes one record per process that exits (containers' processes included: one
kernel), so long-lived daemons (dockerd, PostgreSQL in a lab) count only once they stop.
`report` sums user + system CPU by command name; a `*` marks processes that forked and never
exec'd (Ansible's per-task workers are `ansible-playboo*`, the main process `ansible-playboo`;
a module run in a Debian container is `python3` or `python3.11`, on the controller the venv's
`python`). Needs CAP_SYS_PACCT (root).
"""

from __future__ import annotations

import collections
import ctypes
import struct
import subprocess
import sys
from pathlib import Path

# struct acct_v3 (linux/acct.h): 64 bytes; comp_t is a 13-bit mantissa with a base-8 exponent.
RECORD = struct.Struct("<ccHIIIIIIf8H16s")
AFORK = 0x01
AHZ = 100


def comp(value: int) -> int:
    return (value & 0x1FFF) << (3 * ((value >> 13) & 7))


def records(path: Path):
    data = path.read_bytes()
    for offset in range(0, len(data) - RECORD.size + 1, RECORD.size):
        fields = RECORD.unpack_from(data, offset)
        flag, utime, stime, comm = fields[0][0], fields[10], fields[11], fields[18]
        name = comm.split(b"\0")[0].decode(errors="replace") + ("*" if flag & AFORK else "")
        yield name, (comp(utime) + comp(stime)) / AHZ


def report(path: Path, top: int = 25) -> str:
    cpu: collections.Counter = collections.Counter()
    count: collections.Counter = collections.Counter()
    for name, seconds in records(path):
        cpu[name] += seconds
        count[name] += 1
    total = sum(cpu.values()) or 1.0
    lines = [f"{total:.0f} CPU-s in {sum(count.values())} processes"]
    lines += [f"{s:9.1f} {100 * s / total:5.1f}% {count[n]:7d}  {n}" for n, s in cpu.most_common(top)]
    return "\n".join(lines)


def run(path: Path, argv: list[str]) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    path.write_bytes(b"")
    if libc.acct(str(path).encode()) != 0:
        raise SystemExit(f"acct({path}) failed: errno {ctypes.get_errno()} (root with CAP_SYS_PACCT needed)")
    try:
        return subprocess.call(argv)
    finally:
        libc.acct(None)


def main() -> None:
    if len(sys.argv) >= 4 and sys.argv[1] == "run" and sys.argv[3] == "--":
        raise SystemExit(run(Path(sys.argv[2]), sys.argv[4:]))
    if len(sys.argv) in (3, 4) and sys.argv[1] == "report":
        print(report(Path(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) == 4 else 25))
        return
    raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
