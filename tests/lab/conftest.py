"""The lab, brought up once per test session by the README's demo command."""

from __future__ import annotations

import os
import subprocess

import pytest
from lab_helpers import ANSI, BIN, OUTPUT, ROOT, lab_running


@pytest.fixture(scope="session")
def demo_output():
    """Run scripts/demo.sh (lab up, provision, deploy v1); remove the lab at the end if it was not up before."""
    was_running = lab_running()
    OUTPUT.mkdir(exist_ok=True)
    log = OUTPUT / "demo.log"
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "ANSIBLE_FORCE_COLOR": "0"}
    with log.open("w") as out:
        result = subprocess.run(
            [ROOT / "scripts" / "demo.sh"], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env, timeout=2700
        )
    yield result.returncode, ANSI.sub("", log.read_text())
    if not was_running:
        subprocess.run([ROOT / "scripts" / "lab.sh", "down"], check=False)


@pytest.fixture(scope="session")
def lab(demo_output):
    rc, text = demo_output
    assert rc == 0, "the demo failed, so the lab is not usable:\n" + text[-4000:]
    return True
