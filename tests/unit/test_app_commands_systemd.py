"""Framework commands run for real (issue 25, app_commands): roles/deploy/tasks/manage.yml, with the
deploy role's vars/main.yml, run by ansible-playbook into a container with a real systemd 252
(opsbook/systemd:bookworm, as test_secrets_escaping.py): each command through systemd-run as the app
user, with the shared env file, in the release, a bare program from the release's virtualenv, the
entry's environment, and a timeout that stops the command and fails the step."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time

import pytest

import helpers

IMAGE = "opsbook/systemd:bookworm"

# A program that says who ran it, where, with what: the release's "python" and "flask".
RECORDER = """#!/bin/sh
printf '{"argv0": "%s", "args": "%s", "uid": "%s", "cwd": "%s", "secret": "%s", "lang": "%s"}\\n' \\
  "$0" "$*" "$(id -un)" "$(pwd)" "$APP_SECRET" "$LANG" >> /tmp/commands.jsonl
"""

PLAYBOOK = """
- name: The deploy role's manage.yml, for real
  hosts: box
  gather_facts: false
  tasks:
    - name: Load the deploy role's variables
      ansible.builtin.include_vars: {root}/roles/deploy/vars/main.yml
    - name: Run each command
      ansible.builtin.include_tasks: {root}/roles/deploy/tasks/manage.yml
      loop: "{{{{ __deploy_commands }}}}"
      loop_control:
        loop_var: deploy_command
"""


def docker(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, timeout=timeout)


@pytest.fixture(scope="module")
def box():
    name = f"opsbook-test-commands-{os.getpid()}-{secrets.token_hex(3)}"
    docker(
        "run", "-d", "--name", name,
        "--cap-add", "SYS_ADMIN", "--security-opt", "seccomp=unconfined", "--cgroupns=host",
        "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "--tmpfs", "/run", "--tmpfs", "/run/lock",
        IMAGE, "/lib/systemd/systemd",
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while docker("exec", name, "systemctl", "is-system-running", check=False).stdout.strip() not in (
            "running",
            "degraded",
        ):
            assert time.monotonic() < deadline, "systemd did not start"
            time.sleep(0.5)
        setup = (
            "useradd --system --user-group journal && mkdir -p /srv/app/shared /srv/app/releases/r1/venv/bin"
            " /srv/app/releases/r1/ca"
            " && printf 'APP_SECRET=\"s3cr3t value\"\\n' > /srv/app/shared/env && chmod 600 /srv/app/shared/env"
            " && cat > /srv/app/releases/r1/venv/bin/python && chmod 755 /srv/app/releases/r1/venv/bin/python"
            " && cp /srv/app/releases/r1/venv/bin/python /srv/app/releases/r1/venv/bin/flask"
        )
        subprocess.run(["docker", "exec", "-i", name, "sh", "-c", setup], input=RECORDER, text=True, check=True)
        yield name
    finally:
        docker("rm", "-f", name, check=False)


def run(tmp_path, box: str, commands, **more) -> tuple[subprocess.CompletedProcess, list[dict]]:
    docker("exec", box, "rm", "-f", "/tmp/commands.jsonl")
    inventory = {
        "all": {
            "hosts": {"box": {"ansible_connection": "community.docker.docker", "ansible_host": box}},
            "vars": {
                "app_user": "journal",
                "app_group": "journal",
                "app_root": "/srv/app",
                "deploy_release_id": "r1",
                "app_commands": commands,
                "ansible_python_interpreter": "/usr/bin/python3",
                **more,
            },
        }
    }
    (tmp_path / "inventory.json").write_text(json.dumps(inventory))
    out = helpers.playbook_on_localhost(
        tmp_path, PLAYBOOK.format(root=helpers.REPO_ROOT), {}, inventory=tmp_path / "inventory.json"
    )
    seen = docker("exec", box, "cat", "/tmp/commands.jsonl", check=False).stdout.splitlines()
    return out, [json.loads(line) for line in seen]


def test_the_default_and_a_flask_command_run_as_the_app_user_in_the_release(tmp_path, box):
    out, seen = run(tmp_path, box, None)  # unset: Django's migrate, collectstatic
    assert out.returncode == 0, out.stdout + out.stderr
    assert "TASK [DEPLOY | manage.py migrate --noinput]" in out.stdout
    assert [(s["argv0"], s["args"]) for s in seen] == [
        ("/srv/app/releases/r1/venv/bin/python", "manage.py migrate --noinput"),
        ("/srv/app/releases/r1/venv/bin/python", "manage.py collectstatic --noinput"),
    ]
    assert {(s["uid"], s["cwd"], s["secret"]) for s in seen} == {("journal", "/srv/app/releases/r1", "s3cr3t value")}
    assert "s3cr3t" not in out.stdout  # the env file's values never reach argv or the output

    flask = [{"name": "migrate", "argv": ["flask", "db", "upgrade"], "environment": {"LANG": "C.UTF-8"}}]
    out, seen = run(tmp_path, box, flask)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "TASK [DEPLOY | flask db upgrade]" in out.stdout
    assert seen == [
        {
            "argv0": "/srv/app/releases/r1/venv/bin/flask",
            "args": "db upgrade",
            "uid": "journal",
            "cwd": "/srv/app/releases/r1",
            "secret": "s3cr3t value",
            "lang": "C.UTF-8",
        }
    ]


def test_with_app_workdir_the_commands_run_in_that_directory_of_the_release(tmp_path, box):
    # django-ca: manage.py is in <release>/ca; the virtualenv stays at the release's top.
    out, seen = run(tmp_path, box, None, app_workdir="ca")
    assert out.returncode == 0, out.stdout + out.stderr
    assert [(s["argv0"], s["args"], s["cwd"]) for s in seen] == [
        ("/srv/app/releases/r1/venv/bin/python", "manage.py migrate --noinput", "/srv/app/releases/r1/ca"),
        ("/srv/app/releases/r1/venv/bin/python", "manage.py collectstatic --noinput", "/srv/app/releases/r1/ca"),
    ]


def test_a_timeout_stops_the_command_and_fails_the_step(tmp_path, box):
    started = time.monotonic()
    out, _seen = run(tmp_path, box, [{"name": "slow", "argv": ["/bin/sleep", "60"], "timeout": 2}])
    assert out.returncode != 0
    assert "TASK [DEPLOY | /bin/sleep 60]" in out.stdout and "fatal: [box]" in out.stdout
    assert time.monotonic() - started < 50
    assert docker("exec", box, "pgrep", "-x", "sleep", check=False).returncode != 0  # stopped, not left running
