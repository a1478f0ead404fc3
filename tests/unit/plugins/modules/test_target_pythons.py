"""Every module imports and runs on each target Python tests/config.yml allows (>=3.9): 3.9 to 3.13.

Containers from root filesystems made by scripts/target-pythons.sh (cached in $OPSBOOK_CACHE):
Debian bullseye (3.9), Ubuntu jammy (3.10), Ubuntu noble (3.12), Debian trixie (3.13), and the
lab's systemd image (bookworm, 3.11). One ansible-playbook run over the five (community.docker.docker
connection, ansible_python_interpreter set) ships each module with AnsiballZ as a real run does:
every module is imported and answers {} with its own argument check, in the words it uses
in-process on the controller (an import error is reported in other words), and run_lock
(take, refuse, release), backup_retention (check mode, manifest times with a trailing Z) and
deploy_record run for real. docs/development.md#target-pythons.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from module_runner import run_module

ROOT = Path(__file__).resolve().parents[4]
BIN = Path(sys.executable).parent
CACHE = Path(os.environ.get("OPSBOOK_CACHE", Path.home() / ".cache" / "opsbook")) / "pythons"
# validate_run's action plugin does its work on the controller and never ships the module.
CONTROLLER_ONLY = {"validate_run"}
MODULES = sorted(
    p.stem for p in (ROOT / "plugins" / "modules").glob("*.py") if p.stem not in {"__init__", *CONTROLLER_ONLY}
)
# host -> (image or Debian suite, interpreter, the version it must report)
TARGETS = {
    "py39": ("bullseye", "/usr/bin/python3.9", "3.9"),
    "py310": ("jammy", "/usr/bin/python3.10", "3.10"),
    "py311": (os.environ.get("OPSBOOK_SYSTEMD_IMAGE", "opsbook/systemd:bookworm"), "/usr/bin/python3.11", "3.11"),
    "py312": ("noble", "/usr/bin/python3.12", "3.12"),
    "py313": ("trixie", "/usr/bin/python3.13", "3.13"),
}
WORK = "/tmp/opsbook-target"
BACKUPS = ["20261127T030000Z", "20261128T030000Z", "20261129T030000Z"]


def docker(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, timeout=timeout)


def image_for(suite: str) -> str:
    """opsbook/python:<suite>, imported from the cached root filesystem when it is not there or older."""
    if "/" in suite:
        return suite
    tarball = CACHE / f"{suite}.tar"
    assert tarball.is_file(), f"{tarball} is missing: scripts/bootstrap.sh (scripts/target-pythons.sh) makes it"
    image, stamp = f"opsbook/python:{suite}", f"{tarball.stat().st_size}-{int(tarball.stat().st_mtime)}"
    have = docker("image", "inspect", "-f", '{{ index .Config.Labels "org.opsbook.rootfs" }}', image, check=False)
    if have.stdout.strip() != stamp:
        docker("import", "-c", f"LABEL org.opsbook.rootfs={stamp}", str(tarball), image)
    return image


@pytest.fixture(scope="module")
def targets():
    names = {}
    try:
        for host, (suite, _python, _version) in TARGETS.items():
            name = f"opsbook-target-{host}-{os.getpid()}"
            docker("run", "-d", "--rm", "--name", name, "--entrypoint", "sleep", image_for(suite), "infinity")
            names[host] = name
        yield names
    finally:
        for name in names.values():
            docker("rm", "-f", name, check=False)


def task(name: str, **body) -> dict:
    return {"name": name, **body}


def playbook(expected: dict[str, str]) -> list[dict]:
    bare = [
        task(
            f"{module} with no arguments",
            **{f"opsbook.webstack.{module}": {}},
            register=f"bare_{module}",
            ignore_errors=True,
        )
        for module in MODULES
    ]
    lock = f"{WORK}/deploy.lock"
    return [
        {
            "name": "Modules on the target's Python",
            "hosts": "targets",
            "gather_facts": False,
            "tasks": [
                task("Python version", raw="{{ ansible_python_interpreter }} -V", register="version"),
                task(
                    "The target runs the Python it stands for",
                    **{"ansible.builtin.assert": {"that": "('Python ' ~ python_version ~ '.') in version.stdout"}},
                ),
                *bare,
                task(
                    "Each module was imported and answered {} as it does on the controller",
                    **{
                        "ansible.builtin.assert": {
                            "that": [
                                "result is failed and result.msg == expected[item]",
                            ],
                            "fail_msg": "{{ item }} on Python {{ python_version }}: {{ result }}",
                            "quiet": True,
                        }
                    },
                    loop=MODULES,
                    vars={"result": "{{ lookup('vars', 'bare_' ~ item) }}", "expected": expected},
                ),
                task("Clean work directory", file={"path": WORK, "state": "absent"}),
                task("Work directory", file={"path": WORK, "state": "directory", "mode": "0755"}),
                task(
                    "Take the deploy lock",
                    **{
                        "opsbook.webstack.run_lock": {
                            "path": lock,
                            "token": "t1",
                            "holder": {"user": "tester", "controller": "pytest", "release": "r1"},
                        }
                    },
                    register="taken",
                ),
                task(
                    "Take it with another token: held",
                    **{
                        "opsbook.webstack.run_lock": {
                            "path": lock,
                            "token": "t2",
                            "holder": {"user": "other", "controller": "elsewhere", "release": "r2"},
                            "wait_timeout": 0,
                        }
                    },
                    register="refused",
                    ignore_errors=True,
                ),
                task(
                    "Release it",
                    **{"opsbook.webstack.run_lock": {"path": lock, "token": "t1", "state": "absent"}},
                    register="released",
                ),
                *[
                    task(
                        f"Backup {backup}",
                        copy={
                            "dest": f"{WORK}/journal-{backup}.json",
                            "mode": "0600",
                            "content": json.dumps(
                                {
                                    "id": backup,
                                    "app": "journal",
                                    "time": f"{backup[:4]}-{backup[4:6]}-{backup[6:8]}T03:00:00Z",
                                    "file": f"journal-{backup}.dump",
                                    "verified": True,
                                    "files": {},
                                }
                            ),
                        },
                    )
                    for backup in BACKUPS
                ],
                *[
                    task(f"Dump {b}", copy={"dest": f"{WORK}/journal-{b}.dump", "content": "PGDMP", "mode": "0600"})
                    for b in BACKUPS
                ],
                task(
                    "Rotate to the newest in check mode",
                    **{
                        "opsbook.webstack.backup_retention": {
                            "path": WORK,
                            "app": "journal",
                            "policy": {"keep_last": 1},
                        }
                    },
                    check_mode=True,
                    register="rotation",
                ),
                task("Files left", find={"paths": WORK, "patterns": "journal-*"}, register="left"),
                task(
                    "Record a deploy",
                    **{
                        "opsbook.webstack.deploy_record": {
                            "app_root": WORK,
                            "app": "journal",
                            "pointer": f"{WORK}/current",
                            "log_path": f"{WORK}/deploy.jsonl",
                            "fact_path": f"{WORK}/opsbook_deploy.fact",
                            "record": {"action": "deploy", "release": "r1", "ref": "v1", "result": "success"},
                        }
                    },
                    register="recorded",
                ),
                task("Deploy log", slurp={"src": f"{WORK}/deploy.jsonl"}, register="log"),
                task(
                    "Summary",
                    **{
                        "ansible.builtin.set_fact": {
                            "summary": {
                                "taken": "{{ taken is changed and taken is not failed }}",
                                "refused": "{{ refused is failed and 'tester' in refused.msg }}",
                                "released": "{{ released is changed }}",
                                "rotate_keep": "{{ rotation.plan.keep }}",
                                "rotate_delete": "{{ rotation.plan.delete }}",
                                "rotate_changed": "{{ rotation is changed }}",
                                "files_left": "{{ left.matched }}",
                                "recorded": "{{ (log.content | b64decode | from_json).release }}",
                            }
                        }
                    },
                ),
                task("Print the summary", debug={"msg": "SUMMARY {{ summary | to_json }}"}),
            ],
        }
    ]


def test_every_module_imports_and_runs_on_each_target_python(targets, tmp_path):
    inventory = {
        "all": {
            "children": {
                "targets": {
                    "hosts": {
                        host: {
                            "ansible_host": targets[host],
                            "ansible_connection": "community.docker.docker",
                            "ansible_python_interpreter": python,
                            "python_version": version,
                        }
                        for host, (_suite, python, version) in TARGETS.items()
                    }
                }
            }
        }
    }
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(inventory))
    # What each module says to {} when run in-process here: the same words from a target mean
    # it was imported there (an import error is reported as the exception's message).
    expected = {module: run_module(module, {}).msg for module in MODULES}
    (tmp_path / "play.yml").write_text(yaml.safe_dump(playbook(expected), sort_keys=False))
    result = subprocess.run(
        [BIN / "ansible-playbook", "-i", tmp_path / "inventory.yml", tmp_path / "play.yml"],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,
        env={
            **os.environ,
            "ANSIBLE_COLLECTIONS_PATH": str(ROOT / "playbooks" / "collections"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORKS": str(len(TARGETS)),
            "ANSIBLE_PIPELINING": "1",
            "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.default",
        },
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-8000:]
    summaries = {}
    for host in TARGETS:
        marker = f'ok: [{host}] => {{\n    "msg": "SUMMARY '
        start = out.index(marker) + len(marker)
        summaries[host] = json.loads(json.loads('"' + out[start : out.index('"\n}', start)] + '"'))
    for host, (_suite, _python, version) in TARGETS.items():
        seen = summaries[host]
        assert seen["taken"] and seen["refused"] and seen["released"], (version, seen)
        assert seen["rotate_changed"] and seen["rotate_keep"] == [BACKUPS[2]], (version, seen)
        assert seen["rotate_delete"] == [BACKUPS[1], BACKUPS[0]] and int(seen["files_left"]) == 6, (version, seen)
        assert seen["recorded"] == "r1", (version, seen)
