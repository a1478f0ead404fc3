"""The deploy role's controller step (roles/deploy/tasks/controller.yml) on this machine.

The release archive (`git archive`) and the wheelhouse archive are cached on the controller
under names made of their content (the commit, the wheel listing), so two playbooks running
at once on one controller (two deploys, a deploy beside a blue-green switch) look for the
same file. The step must never let a reader see a half-written archive under that name: a
Molecule run in CI failed that way ("tar is not a valid format", community.general.archive
reading the tar another run was writing).

The cache is private to the user running the playbook (`$XDG_CACHE_HOME/opsbook/deploy`,
0700), never the shared TMPDIR where another local user could plant an archive of the
expected name; each archive's sha256 is recorded beside it when built and checked before
it is reused.

Each writer here is wrapped by a script on PATH that, once the real `git archive` or `tar`
has written its output, pauses until the test lets it go: while it waits, the final name
must not exist yet. Runs `ansible-playbook` on localhost through the collection path, as a
user would.
"""

from __future__ import annotations

import hashlib
import io
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
        public: true
      vars:
        app_name: demoapp
        deploy_strategy: git
        deploy_source_repo: "{repo}"
        deploy_ref: v1
        deploy_wheelhouse: "{wheelhouse}"

    # What build.yml would send to the hosts.
    - name: Show the archives the hosts would receive
      ansible.builtin.debug:
        msg: >-
          USED {{{{ __deploy_archive }}}}
          {{{{ __deploy_tmp }}}}/opsbook-wheelhouse-{{{{ __deploy_wheelhouse_hash }}}}.v2.tar
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
    shared = tmp_path / "shared"  # TMPDIR: the old, shared place
    shared.mkdir()
    xdg = tmp_path / "xdg"  # XDG_CACHE_HOME: the archives go to xdg/opsbook/deploy
    xdg.mkdir(mode=0o700)
    pause = tmp_path / "pause"
    pause.mkdir()
    return {
        "playbook": playbook,
        "shared": shared,
        "xdg": xdg,
        "cache": xdg / "opsbook" / "deploy",
        "fakebin": fakebin,
        "pause": pause,
        "wheelhouse": wheelhouse,
        "repo": repo,
    }


def start(c: dict[str, Path], **extra: str) -> subprocess.Popen:
    env = {
        "PATH": f"{c['fakebin']}:{BIN}:/usr/local/bin:/usr/bin:/bin",
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
        "TMPDIR": str(c["shared"]),
        "XDG_CACHE_HOME": str(c["xdg"]),
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
    """The archives under their final names (their .sha256 records apart)."""
    if not cache.exists():
        return []
    return sorted(
        p.name
        for p in cache.iterdir()
        if p.name.startswith("opsbook-") and ".part." not in p.name and not p.name.endswith(".sha256")
    )


def parts(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir() if ".part." in p.name) if cache.exists() else []


def used(out: str) -> tuple[Path, Path]:
    """The code archive and the wheelhouse archive the run would send to the hosts."""
    match = re.search(r"USED (\S+) (\S+?)\"", out)
    assert match, out
    return Path(match.group(1)), Path(match.group(2))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tar_gz(path: Path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


def expected_names(c: dict[str, Path]) -> tuple[str, str]:
    """The cached names a run looks for: the commit of v1, the fingerprint of the wheel listing."""
    rev = subprocess.run(
        ["git", "--git-dir", str(c["repo"]), "rev-parse", "v1^{commit}"], capture_output=True, text=True, check=True
    ).stdout.strip()
    listing = subprocess.run(
        "ls -l --time-style=+%s -- *.whl | sha256sum | cut -c1-16",
        shell=True,
        cwd=c["wheelhouse"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return f"opsbook-demoapp-{rev}.tar.gz", f"opsbook-wheelhouse-{listing}.v2.tar"


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
    assert set(used(out)) == {c["cache"] / n for n in names}, out
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
    assert {oct(p.stat().st_mode & 0o777) for p in (release, wheels)} == {"0o600"}
    # Private: the runner's, 0700; each archive's sha256 recorded beside it.
    assert (c["cache"].stat().st_uid, oct(c["cache"].stat().st_mode & 0o777)) == (os.getuid(), "0o700")
    for archive in (release, wheels):
        recorded = Path(f"{archive}.sha256").read_text().split()[0]
        assert recorded == sha256(archive), archive
    assert list(c["shared"].iterdir()) == [], "something was written to the shared TMPDIR"

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


def test_archives_planted_in_the_shared_tmpdir_are_not_used(controller):
    """Another local user can write to TMPDIR (/tmp): files of the expected names there are ignored."""
    c = controller
    code_name, wheel_name = expected_names(c)
    tar_gz(c["shared"] / code_name, {"app.py": b"print('planted')\n"})
    (c["shared"] / wheel_name).write_bytes(b"planted wheelhouse")
    planted = {p.name: sha256(p) for p in c["shared"].iterdir()}

    rc, out, changed, failed = finish(start(c))
    assert (rc, failed) == (0, 0), out
    code, wheels = used(out)
    assert (code.parent, wheels.parent) == (c["cache"], c["cache"]), out
    assert (code.name, wheels.name) == (code_name, wheel_name)
    with tarfile.open(code) as archive:
        assert archive.extractfile("app.py").read() == b"print('v1')\n"
    with tarfile.open(wheels) as archive:
        assert archive.getnames()[-1] == ".complete"
    assert {p.name: sha256(p) for p in c["shared"].iterdir()} == planted, "the planted files were touched"


@pytest.mark.parametrize("which", ["code", "wheelhouse"])
def test_a_tampered_cached_archive_is_detected(controller, which):
    """An archive changed after it was built fails the run, naming it; it is never sent to a host."""
    c = controller
    rc, out, _, _ = finish(start(c))
    assert rc == 0, out
    code_name, wheel_name = expected_names(c)
    if which == "code":
        target = c["cache"] / code_name
        tar_gz(target, {"app.py": b"print('tampered')\n"})
    else:
        target = c["cache"] / wheel_name
        with target.open("r+b") as archive:  # one byte of a wheel's data
            archive.seek(2000)
            byte = archive.read(1)
            archive.seek(2000)
            archive.write(bytes([byte[0] ^ 0xFF]))
    tampered = sha256(target)

    rc, out, _, failed = finish(start(c))
    assert rc != 0 and failed == 1, out
    assert re.search(rf"{re.escape(str(target))} does not match its recorded sha256", out), out
    assert "USED" not in out
    assert sha256(target) == tampered, "the evidence was overwritten"


def unsafe_group_writable(c: dict[str, Path]) -> Path:
    c["cache"].mkdir(parents=True)
    c["cache"].chmod(0o770)
    return c["cache"]


def unsafe_world_writable(c: dict[str, Path]) -> Path:
    c["cache"].mkdir(parents=True)
    c["cache"].chmod(0o777)
    return c["cache"]


def unsafe_other_owner(c: dict[str, Path]) -> Path:
    c["cache"].mkdir(parents=True, mode=0o700)
    os.chown(c["cache"], 65534, 65534)
    return c["cache"]


def unsafe_parent(c: dict[str, Path]) -> Path:
    """A parent anyone can write to (no sticky bit): our directory could be swapped for theirs."""
    c["xdg"].chmod(0o777)
    return c["xdg"]


@pytest.mark.skipif(os.getuid() != 0, reason="chown to another user needs root")
@pytest.mark.parametrize(
    "make_unsafe,reason",
    [
        (unsafe_group_writable, "writable by its group or others"),
        (unsafe_world_writable, "writable by its group or others"),
        (unsafe_other_owner, "owned by uid 65534"),
        (unsafe_parent, "writable by its group or others"),
    ],
    ids=["group-writable", "world-writable", "other-owner", "writable-parent"],
)
def test_an_unsafe_cache_directory_is_refused(controller, make_unsafe, reason):
    c = controller
    culprit = make_unsafe(c)
    rc, out, _, failed = finish(start(c))
    assert rc != 0 and failed == 1, out
    assert f"Refusing the archive cache {c['cache']}" in out, out
    assert f"{culprit} is {reason}" in out, out
    assert finals(c["cache"]) == [], "an archive was written to the unsafe directory"


def test_archives_unused_for_two_weeks_are_removed(controller):
    """The cache is not emptied by a reboot as /tmp was: what no run built or reused for 14 days goes."""
    c = controller
    rc, out, _, _ = finish(start(c))
    assert rc == 0, out
    current = sorted(p.name for p in c["cache"].iterdir())
    old = time.time() - 15 * 86400
    stale = ["opsbook-demoapp-" + "0" * 40 + ".tar.gz", "opsbook-wheelhouse-0000000000000000.v2.tar"]
    for name in stale:
        for path in (c["cache"] / name, c["cache"] / f"{name}.sha256"):
            path.write_bytes(b"old")
            os.utime(path, (old, old))
    recent = time.time() - 10 * 86400
    for name in current:  # reused 10 days ago: kept, and reusing them now counts as a use
        os.utime(c["cache"] / name, (recent, recent))

    rc, out, changed, _ = finish(start(c))
    assert (rc, changed) == (0, 0), out
    assert sorted(p.name for p in c["cache"].iterdir()) == current
    assert all(time.time() - (c["cache"] / n).stat().st_mtime < 600 for n in current if n.startswith("opsbook-"))
