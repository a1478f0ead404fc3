"""Public apps opsbook did not write, fetched as a user would (issue 25): a release archive pinned
by version and sha256 from PyPI, and a wheelhouse of its dependencies for the lab's hosts.

Nothing of these apps is committed: `pip download` fetches them into $OPSBOOK_CACHE/byo on the
controller, each archive checked against the sha256 the test pins before it is used (a mismatch
fails, naming the file and both sums). The wheelhouse is for Debian 12's CPython 3.11 on x86_64
(the lab's hosts, as examples/webapp/build-wheelhouse.sh), binary wheels only; a dependency that
publishes no wheel is built into a pure-Python wheel on the controller from its sdist. Every
dependency's version is pinned in tests/lab/byo/<app>-constraints.txt, so the wheelhouse is the
same on every machine and day.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CACHE = Path(os.environ.get("OPSBOOK_CACHE") or Path.home() / ".cache" / "opsbook") / "byo"
PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
# Debian 12: glibc 2.36, so every manylinux tag up to 2.36 runs there.
TARGET = [
    "--only-binary=:all:",
    "--implementation", "cp", "--python-version", "3.11", "--abi", "cp311", "--abi", "abi3", "--abi", "none",
    *(arg for minor in range(36, 4, -1) for arg in ("--platform", f"manylinux_2_{minor}_x86_64")),
    "--platform", "manylinux2014_x86_64", "--platform", "manylinux2010_x86_64", "--platform", "manylinux1_x86_64",
    "--platform", "any",
]  # fmt: skip


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fetch_sdist(name: str, version: str, digest: str) -> Path:
    """The sdist of name==version from the package index, as $OPSBOOK_CACHE/byo/<name>-<version>.tar.gz."""
    CACHE.mkdir(parents=True, exist_ok=True)
    dest = CACHE / f"{name}-{version}.tar.gz"
    if dest.is_file() and sha256(dest) == digest:
        return dest
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        subprocess.run(
            [*PIP, "download", "--no-deps", "--no-binary", ":all:", "--dest", tmp, f"{name}=={version}"],
            check=True,
            timeout=600,
        )
        (got,) = Path(tmp).glob("*.tar.gz")
        actual = sha256(got)
        if actual != digest:
            raise RuntimeError(f"{got.name} from the index has sha256 {actual}, not the pinned {digest}: not used")
        got.replace(dest)
    return dest


def constraints(name: str) -> Path:
    """tests/lab/byo/<name>-constraints.txt: every dependency's version, pinned (pip -c)."""
    return Path(__file__).resolve().parent / "byo" / f"{name}-constraints.txt"


def wheelhouse(name: str, requirement_sets: list[list[str]], from_source: list[str]) -> Path:
    """Wheels for every set of requirements (each resolved alone: two versions of the app), in
    $OPSBOOK_CACHE/byo/<name>-wheelhouse, every dependency at the version its constraints file
    pins; the app's own wheels removed, so a release installs the code of its archive. Skipped
    when the stamp says the same sets and pins were fetched."""
    dest = CACHE / f"{name}-wheelhouse"
    pins = constraints(name)
    want = hashlib.sha256(repr((requirement_sets, from_source, TARGET, pins.read_text())).encode()).hexdigest()
    stamp = dest / ".requirements.sha256"
    if stamp.is_file() and stamp.read_text().strip() == want:
        return dest
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    pinned = ["--constraint", str(pins)]
    if from_source:
        subprocess.run(
            [*PIP, "wheel", "--no-deps", *pinned, "--wheel-dir", dest, *from_source], check=True, timeout=600
        )
    for requirements in requirement_sets:
        subprocess.run(
            [*PIP, "download", *pinned, "--dest", dest, "--find-links", dest, *TARGET, *requirements],
            check=True,
            timeout=900,
        )
    for own in dest.glob(f"{name.replace('-', '_')}-*.whl"):  # a wheel's name has _ for - (django_ca-3.2.0-...)
        own.unlink()
    stamp.write_text(want + "\n")
    return dest
