# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Processes that run beside the module while it works with their pipes.

AnsibleModule.run_command runs one command to its end. pg_backup_dump reads pg_dump's archive
as it is written and feeds it to a pg_restore that runs at the same time, so it starts both here.
"""

from __future__ import annotations

import subprocess


def start(argv: list[str], **options) -> subprocess.Popen:
    """subprocess.Popen(argv, **options): argv is a list the caller builds, never a shell string."""
    return subprocess.Popen(argv, **options)  # noqa: S603
