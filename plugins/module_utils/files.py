# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Writing a file so that a reader sees the old content or the new one, never a part.

One copy for the modules that rewrite a file in place (deploy_record's local fact,
nginx_upstream_server's and caddy_upstream_server's upstream files), and the check-then-reload
walk both upstream modules take (rewrite_checked).
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


def rewrite_checked(module, path: str, edit, check_command: list, reload_command: list, software: str) -> None:
    """Rewrite path as edit(old text) -> (new text, the line it set) says, then check and reload; exits the module.

    Unchanged, or in check mode: reports and changes nothing. Else the new file is written atomically and
    check_command run; a refusal puts the old file back and reloads nothing. Then reload_command. A file that
    cannot be read or edited (edit raises ValueError) fails with nothing changed. The result: changed, server
    (the line), reloaded, and the diff in diff mode.
    """
    try:
        with open(path, encoding="utf-8") as fh:
            old = fh.read()
        new, line = edit(old)
    except (OSError, ValueError) as exc:
        module.fail_json(msg=f"{path}: {exc}; nothing was changed", reloaded=False)
    result = {"changed": new != old, "server": line, "reloaded": False}
    if module._diff and new != old:
        result["diff"] = {"before": old, "after": new, "before_header": path, "after_header": path}
    if new == old or module.check_mode:
        module.exit_json(**result)
    write_atomic(path, new)
    rc, out, err = module.run_command(check_command)
    if rc != 0:
        write_atomic(path, old)
        module.fail_json(
            msg=f"{' '.join(check_command)} refused the configuration with {path} changed; "
            f"the old file was put back and {software} was not reloaded: {(err or out).strip()[-2000:]}",
            rc=rc,
            reloaded=False,
        )
    rc, out, err = module.run_command(reload_command)
    if rc != 0:
        module.fail_json(
            msg=f"{' '.join(reload_command)} failed after {path} was changed: {(err or out).strip()[-2000:]}",
            rc=rc,
            reloaded=False,
        )
    result["reloaded"] = True
    module.exit_json(**result)
