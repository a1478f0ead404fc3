"""Every Molecule scenario, run as a test: `molecule test -s <scenario>` against containers.

Each scenario's own sequence (create, converge, idempotence, verify, destroy) is the
test; its full log is kept in tests/output/molecule-<scenario>.log.
"""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = sorted(p.parent.name for p in (ROOT / "molecule").glob("*/molecule.yml"))
OUTPUT = ROOT / "tests" / "output"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def test_there_are_scenarios():
    assert "operations" in SCENARIOS
    assert "deploy" in SCENARIOS


@pytest.mark.lab
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_molecule_scenario(scenario):
    OUTPUT.mkdir(exist_ok=True)
    log = OUTPUT / f"molecule-{scenario}.log"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "PY_COLORS": "0"}
    started = time.monotonic()
    with log.open("w") as out:
        result = subprocess.run(
            [Path(sys.executable).parent / "molecule", "test", "-s", scenario],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            timeout=3600,  # a hang guard, not a budget: a scenario takes 6 to 20 min on 2 quiet cores
        )
    took = time.monotonic() - started
    text = ANSI.sub("", log.read_text())
    print(f"molecule scenario {scenario}: exit {result.returncode} in {took:.0f} s (log: {log})")
    assert result.returncode == 0, f"molecule test -s {scenario} failed; last lines of {log}:\n" + text[-8000:]
