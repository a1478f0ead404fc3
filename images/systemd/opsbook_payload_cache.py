"""Lab images only: cache the bytecode of the Python that Ansible ships with every module run.

Ansible sends each module as a zip (AnsiballZ) that Python imports from; Python never caches
bytecode for a zip, so every task on every host compiles ansible.module_utils again (about a
third of a module run's CPU here). This hook, loaded by opsbook_payload_cache.pth at start-up,
keeps the compiled code of files inside Ansible payload zips under /var/cache/opsbook-payload-pyc,
keyed by the file's path inside the zip and the sha256 of its source, and gives the code back
with the current file name. Only for root, only in a root-owned directory no one else can
write; anything unexpected falls back to compiling, as Python would. It changes no result:
the same source gives the same code. Not part of the collection: see docs/testing.md.
"""

import contextlib
import zipimport

_CACHE = "/var/cache/opsbook-payload-pyc"
_MARK = "_payload.zip/"
_compile_source = zipimport._compile_source


def _with_filename(code, filename):
    consts = tuple(_with_filename(c, filename) if isinstance(c, type(code)) else c for c in code.co_consts)
    return code.replace(co_filename=filename, co_consts=consts)


_ready = None  # the directory checked once per process: a module run compiles some 110 files


def _cache_ready(os):
    global _ready
    if _ready is None:
        try:
            os.makedirs(_CACHE, mode=0o700, exist_ok=True)
            st = os.lstat(_CACHE)
        except OSError:
            _ready = False
        else:
            _ready = (
                st.st_uid == 0 and (st.st_mode & 0o7077) == 0 and os.path.isdir(_CACHE) and not os.path.islink(_CACHE)
            )
    return _ready


def _cached_compile(pathname, source):
    if _MARK not in pathname:
        return _compile_source(pathname, source)
    import os

    if os.geteuid() != 0 or not _cache_ready(os):
        return _compile_source(pathname, source)
    import hashlib
    import marshal

    inner = pathname.split(_MARK, 1)[1]
    path = os.path.join(_CACHE, hashlib.sha256(inner.encode() + b"\0" + source).hexdigest())
    try:
        with open(path, "rb") as f:
            # Only root writes here (checked above); the file is what marshal.dump wrote below.
            return _with_filename(marshal.load(f), pathname)  # noqa: S302
    except (OSError, ValueError, EOFError, TypeError):
        pass
    code = _compile_source(pathname, source)
    tmp = f"{path}.{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            marshal.dump(code, f)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    return code


zipimport._compile_source = _cached_compile
