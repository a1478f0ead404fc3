# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Writing a file so that a reader sees the old content or the new one, never a part.

One copy for the modules that rewrite a file in place (deploy_record's local fact,
nginx_upstream_server's upstream file).
"""

from __future__ import annotations

import os
import tempfile


def write_atomic(path: str, content: str, mode: int | None = None) -> None:
    """Write content to a temporary file beside path, flush it to disk, then rename it over path.

    mode: the new file's mode; None keeps the existing file's mode and owner (path must exist).
    The temporary file is removed on any failure, and path is left as it was.
    """
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=f".{os.path.basename(path)}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        if mode is None:
            info = os.stat(path)
            os.chmod(tmp, info.st_mode & 0o7777)
            os.chown(tmp, info.st_uid, info.st_gid)
        else:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise
