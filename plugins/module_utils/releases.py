# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a release pointer serves: the link's target and that release's REVISION.

One reading for every module that looks at a pointer (deploy_host_state before a deploy,
deploy_record after it), so "what this host serves" means the same thing in both.
"""

from __future__ import annotations

import os


def served(pointer: str):
    """(link target, revision) of `pointer`: (None, '') when it is not a symbolic link, and an
    empty revision when the release's REVISION cannot be read."""
    if not os.path.islink(pointer):
        return None, ""
    target = os.readlink(pointer)
    try:
        with open(os.path.join(pointer, "REVISION"), encoding="utf-8") as fh:
            return target, fh.read().strip()
    except OSError:
        return target, ""
