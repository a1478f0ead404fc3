"""The deploy role's controller step (roles/deploy/tasks/controller.yml) on this machine.

The release archive (`git archive`) and the wheelhouse archive are cached on the controller
under names made of their content (the commit, the wheel listing), so two playbooks running
at once on one controller (two deploys, a deploy beside a blue-green switch) look for the
same file. The step must never let a reader see a half-written archive under that name: a
Molecule run in CI failed that way ("tar is not a valid format", community.general.archive
reading the tar another run was writing).

Each writer here is wrapped by a script on PATH that, once the real `git archive` or `tar`
has written its output, pauses until the test lets it go: while it waits, the final name
must not exist yet. Runs `ansible-playbook` on localhost through the collection path, as a
user would.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

PLAYBOOK = """\
- name: The deploy role's controller step
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Run controller.yml
      ansible.builtin.include_role:
        name: opsbook.webstack.deploy
        tasks_from: controller.yml
      vars:
        app_name: demoapp
        deploy_strategy: git
        deploy_source_repo: "{repo}"
        deploy_ref: v1
        deploy_wheelhouse: "{wheelhouse}"
"""

# Runs the real tool; after `git archive` or `tar -c`, marks PAUSE_DIR/<tool>.paused and
# waits (at most 60 s) for PAUSE_DIR/<tool>.release. FAIL_<TOOL>=1 makes it fail instead.
WRAPPER = """\
#!/bin/bash
tool=$(basename "$0")
case " $* " in *" archive "*|*" -cf "*) writing=1 ;; *) writing=0 ;; esac
if [ "$writing" = 1 ] && [ -n "${{FAIL_{upper}:-}}" ]; then
  echo "$tool: failing as asked" >&2; exit 2
fi
{real} "$@"; rc=$?
if [ "$writing" = 1 ] && [ -n "${{PAUSE_DIR:-}}" ]; then
  touch "$PAUSE_DIR/$tool.paused"
  for _ in $(seq 600); do [ -e "$PAUSE_DIR/$tool.release" ] && break; sleep 0.1; done
fi
exit $rc
"""

RECAP = re.compile(r"^localhost\s+: ok=\d+\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)", re.MULTILINE)


@pytest.fixture
def controller(tmp_path: Path) -> dict[str, Path]:
    repo = tmp_path / "repo.git"
    work = tmp_path / "work"
    work.mkdir()
    git_env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.org",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.org",
    }
    (work / "app.py").write_text("print('v1')\n")
    for argv in (["git", "init", "-q"], ["git", "add", "app.py"], ["git", "commit", "-qm", "v1"], ["git", "tag", "v1"]):
        subprocess.run(argv, cwd=work, env=git_env, check=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(repo)], check=True)

    wheelhouse = tmp_path / "wheelhouse"
    wheelhouse.mkdir()
    for name in ("alpha-1.0-py3-none-any.whl", "beta-2.0-py3-none-any.whl", "gamma-3.0-py3-none-any.whl"):
        (wheelhouse / name).write_bytes(os.urandom(200_000))

    fakebin = tmp_path / "bin"
    fakebin.mkdir()
    for tool in ("git", "tar"):
        script = fakebin / tool
        script.write_text(WRAPPER.format(upper=tool.upper(), real=shutil.which(tool)))
        script.chmod(0o755)

    playbook = tmp_path / "controller.yml"
    playbook.write_text(PLAYBOOK.format(repo=repo, wheelhouse=wheelhouse))
    cache = tmp_path / "cache"
    cache.mkdir()
    pause = tmp_path / "pause"
    pause.mkdir()
    return {"playbook": playbook, "cache": cache, "fakebin": fakebin, "pause": pause, "wheelhouse": wheelhouse}


def start(c: dict[str, Path], **extra: str) -> subprocess.Popen:
    env = {
        "PATH": f"{c['fakebin']}:{BIN}:/usr/local/bin:/usr/bin:/bin",
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
        "TMPDIR": str(c["cache"]),
        "ANSIBLE_COLLECTIONS_PATH": str(ROOT / "playbooks" / "collections"),
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
        "ANSIBLE_NOCOLOR": "1",
        **extra,
    }
    return subprocess.Popen(
        [str(BIN / "ansible-playbook"), str(c["playbook"])],
        cwd=c["playbook"].parent,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(process: subprocess.Popen) -> tuple[int, str, int, int]:
    out, _ = process.communicate(timeout=120)
    recap = RECAP.search(out)
    assert recap, out
    return process.returncode, out, int(recap.group(1)), int(recap.group(2))


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            pytest.fail(f"the playbook ended before {path.name}:\n{process.communicate()[0]}")
        assert time.monotonic() < deadline, f"{path.name} did not appear in {timeout} s"
        time.sleep(0.05)


def finals(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir() if p.name.startswith("opsbook-") and ".part." not in p.name)


def parts(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir() if ".part." in p.name)


def test_archives_appear_under_their_names_only_when_complete(controller):
    c = controller
    run = start(c, PAUSE_DIR=str(c["pause"]))

    wait_for(c["pause"] / "git.paused", run)
    assert finals(c["cache"]) == [], "the release archive is visible under its final name before it is complete"
    assert len(parts(c["cache"])) == 1
    (c["pause"] / "git.release").touch()

    wait_for(c["pause"] / "tar.paused", run)
    assert [n for n in finals(c["cache"]) if "wheelhouse" in n] == [], (
        "the wheelhouse tar is visible before it is complete"
    )
    assert len([n for n in finals(c["cache"]) if n.endswith(".tar.gz")]) == 1, "the release archive was not published"
    (c["pause"] / "tar.release").touch()

    rc, out, changed, failed = finish(run)
    assert (rc, failed) == (0, 0), out
    assert changed == 1, out  # one command resolves, exports and packs
    assert parts(c["cache"]) == []
    names = finals(c["cache"])
    assert len(names) == 2, names
    release = next(c["cache"] / n for n in names if n.endswith(".tar.gz"))
    wheels = next(c["cache"] / n for n in names if "wheelhouse" in n)
    with tarfile.open(release) as archive:
        assert "app.py" in archive.getnames()
    with tarfile.open(wheels) as archive:
        # Every wheel, then .complete last: a host that has .complete unpacked all of it.
        names_in = archive.getnames()
        assert names_in[-1] == ".complete", names_in
        assert sorted(names_in[:-1]) == sorted(p.name for p in c["wheelhouse"].iterdir())
        for member in archive.getmembers()[:-1]:
            assert member.size == (c["wheelhouse"] / member.name).stat().st_size
    assert {oct(p.stat().st_mode & 0o777) for p in (release, wheels)} == {"0o644"}

    # The second run finds both by name and changes nothing.
    rc, out, changed, failed = finish(start(c))
    assert (rc, changed, failed) == (0, 0, 0), out
    assert finals(c["cache"]) == names


def test_failed_writer_leaves_nothing(controller):
    c = controller
    rc, out, _, failed = finish(start(c, FAIL_TAR="1"))
    assert rc != 0 and failed == 1, out
    assert "tar: failing as asked" in out
    assert parts(c["cache"]) == []
    assert [n for n in finals(c["cache"]) if "wheelhouse" in n] == []

    # Nothing stale blocks the next run.
    rc, out, changed, _ = finish(start(c))
    assert rc == 0 and changed == 1, out
    assert len([n for n in finals(c["cache"]) if "wheelhouse" in n]) == 1
