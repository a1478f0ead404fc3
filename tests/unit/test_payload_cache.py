"""The lab images' bytecode cache for Ansible's module payloads (images/systemd/opsbook_payload_cache.py).

The hook replaces zipimport's compile step for files inside Ansible payload zips. Here it is
loaded into this process against a temporary cache directory and real zips imported through
zipimport, as Python imports an AnsiballZ payload: the second payload with the same source is
not compiled again, its code names the new payload's path (tracebacks stay true), a changed
source, a damaged cache entry, a cache directory others can write and a zip that is no payload
all fall back to compiling. (Python 3.11's zipimport compiles a module twice per import, for
its spec and for its code: with the cache, the first payload compiles once.)
"""

from __future__ import annotations

import importlib.util
import os
import sys
import traceback
import zipfile
import zipimport
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HOOK = ROOT / "images" / "systemd" / "opsbook_payload_cache.py"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the cache serves root only")

PROBE = "def fail():\n    raise ValueError('from the probe')\n\nVALUE = {value}\n"


@pytest.fixture
def hook(tmp_path, monkeypatch):
    """The hook module, installed with its cache in tmp_path; zipimport restored afterwards."""
    original = zipimport._compile_source
    spec = importlib.util.spec_from_file_location("opsbook_payload_cache_under_test", HOOK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cache = tmp_path / "cache"
    monkeypatch.setattr(module, "_CACHE", str(cache))
    calls = []

    def counting(pathname, source):
        calls.append(pathname)
        return original(pathname, source)

    monkeypatch.setattr(module, "_compile_source", counting)
    module.calls = calls
    module.cache = cache
    yield module
    zipimport._compile_source = original


def payload(tmp_path: Path, run: str, value: int = 42, kind: str = "ansible_x_payload") -> Path:
    """A zip laid out as AnsiballZ lays out its payload: <tmp>/<kind>_<run>/<kind>.zip."""
    directory = tmp_path / f"{kind}_{run}"
    directory.mkdir()
    path = directory / f"{kind}.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("opsbook_probe/__init__.py", "")
        z.writestr("opsbook_probe/mod.py", PROBE.format(value=value))
    return path


def load(zip_path: Path):
    name = "opsbook_probe.mod"
    for key in [k for k in sys.modules if k.startswith("opsbook_probe")]:
        del sys.modules[key]
    sys.path.insert(0, str(zip_path))
    try:
        spec = zipimport.zipimporter(str(zip_path / "opsbook_probe")).find_spec("mod")
        assert spec is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(zip_path))
        sys.modules.pop(name, None)


def failing_frame(module) -> str:
    with pytest.raises(ValueError) as excinfo:
        module.fail()
    return traceback.extract_tb(excinfo.value.__traceback__)[-1].filename


def test_a_second_payload_reuses_the_code_and_names_its_own_path(hook, tmp_path):
    first = payload(tmp_path, "aaa")
    assert load(first).VALUE == 42
    assert len(hook.calls) == 1
    entries = list(hook.cache.iterdir())
    assert len(entries) == 1
    assert hook.cache.stat().st_mode & 0o777 == 0o700

    second = payload(tmp_path, "bbb")
    module = load(second)
    assert module.VALUE == 42
    assert len(hook.calls) == 1, "the same source was compiled again"
    assert failing_frame(module) == str(second / "opsbook_probe" / "mod.py")


def test_a_changed_source_is_compiled_and_kept_apart(hook, tmp_path):
    load(payload(tmp_path, "aaa", value=1))
    module = load(payload(tmp_path, "bbb", value=2))
    assert module.VALUE == 2
    assert len(hook.calls) == 2
    assert len(list(hook.cache.iterdir())) == 2


def test_a_damaged_entry_is_compiled_again(hook, tmp_path):
    load(payload(tmp_path, "aaa"))
    (entry,) = hook.cache.iterdir()
    entry.write_bytes(b"\x00not marshal data")
    assert load(payload(tmp_path, "bbb")).VALUE == 42
    assert len(hook.calls) == 2
    assert load(payload(tmp_path, "ccc")).VALUE == 42
    assert len(hook.calls) == 2, "the rewritten entry was not used"


def test_a_cache_others_can_write_is_not_used(hook, tmp_path):
    hook.cache.mkdir(mode=0o700)
    hook.cache.chmod(0o777)
    first, second = payload(tmp_path, "aaa"), payload(tmp_path, "bbb")
    load(first)
    load(second)
    assert {Path(c).parents[2] for c in hook.calls} == {first.parent, second.parent}
    assert list(hook.cache.iterdir()) == []


def test_a_zip_that_is_no_payload_is_not_cached(hook, tmp_path):
    first, second = payload(tmp_path, "aaa", kind="wheelhouse"), payload(tmp_path, "bbb", kind="wheelhouse")
    load(first)
    load(second)
    assert {Path(c).parents[2] for c in hook.calls} == {first.parent, second.parent}
    assert not hook.cache.exists()
