"""Secrets made of every printable ASCII character plus spaces (and one with newlines) go through
the real templates, rendered by Ansible, into a real systemd, a real Redis and real clients.

- roles/deploy/templates/env.j2, rendered with lookup('template') as build.yml does, is loaded
  by systemd 252 (a container of opsbook/systemd:bookworm) as the EnvironmentFile of a unit that
  dumps its environment: every variable arrives byte for byte, and nothing is injected.
- roles/provision/templates/redis-opsbook.conf.j2 configures a redis-server: AUTH with the exact
  password works.
- The broker URL of every role that builds one (deploy, celery, maintenance, blue_green vars),
  and REDIS_URL as systemd handed it to the process, connect with redis-py and with kombu.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import kombu
import pytest
import redis

import helpers

ROOT = helpers.REPO_ROOT
BIN = Path(sys.executable).parent
IMAGE = "opsbook/systemd:bookworm"

PRINTABLE = "".join(chr(c) for c in range(0x21, 0x7F))
PASSWORDS = {
    # Spaces at both ends: systemd trims unquoted values, Redis splits arguments on them.
    "printable": " " + PRINTABLE + " ",
    # A newline followed by what would be a new variable in an unescaped file.
    "newline": "line1\nINJECTED=yes\n" + PRINTABLE + "\n",
}

DUMP_ENV = "import json, os, sys\njson.dump(dict(os.environ), open(sys.argv[1], 'w'))\n"

PLAY = """\
- name: Render the secrets through the real templates and role vars
  hosts: localhost
  connection: local
  gather_facts: false
  vars_files:
    - {root}/roles/deploy/vars/main.yml
    - {root}/roles/celery/vars/main.yml
    - {root}/roles/maintenance/vars/main.yml
    - {root}/roles/blue_green/vars/main.yml
  tasks:
    - name: The environment file, as roles/deploy/tasks/build.yml renders it
      ansible.builtin.copy:
        content: "{{{{ lookup('ansible.builtin.template', '{root}/roles/deploy/templates/env.j2') }}}}"
        dest: "{{{{ out }}}}/env"
        mode: "0600"
    - name: The Redis configuration, as roles/provision/tasks/redis.yml renders it
      ansible.builtin.template:
        src: "{root}/roles/provision/templates/redis-opsbook.conf.j2"
        dest: "{{{{ out }}}}/redis-opsbook.conf"
        mode: "0600"
    - name: The broker URL of every role that builds one
      ansible.builtin.copy:
        content: >-
          {{{{ {{'deploy': __deploy_broker_url, 'celery': __celery_broker_url,
                'maintenance': __maintenance_broker_url, 'blue_green': __blue_green_broker_url}} | to_json }}}}
        dest: "{{{{ out }}}}/urls.json"
        mode: "0600"
"""


def docker(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, timeout=timeout)


@pytest.fixture(scope="module")
def systemd_container():
    name = f"opsbook-test-secrets-{os.getpid()}-{secrets.token_hex(3)}"
    docker(
        "run", "-d", "--name", name,
        "--cap-add", "SYS_ADMIN", "--security-opt", "seccomp=unconfined", "--cgroupns=host",
        "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "--tmpfs", "/run", "--tmpfs", "/run/lock",
        IMAGE, "/lib/systemd/systemd",
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        state = ""
        while time.monotonic() < deadline:
            state = docker("exec", name, "systemctl", "is-system-running", check=False).stdout.strip()
            if state in ("running", "degraded"):
                break
            time.sleep(0.5)
        else:
            raise AssertionError(f"systemd in {name} did not start: {state!r}")
        subprocess.run(
            ["docker", "exec", "-i", name, "sh", "-c", "cat > /usr/local/bin/dump-env"],
            input=DUMP_ENV, text=True, check=True, timeout=60,
        )  # fmt: skip
        yield name
    finally:
        docker("rm", "-f", name, check=False)


def render(out: Path, password: str, redis_port: int) -> dict:
    """ansible-playbook renders the templates and role vars with every secret set to password."""
    out.mkdir()
    variables = {
        "out": str(out),
        "app_name": "journal",
        "app_root": "/srv/journal",
        "app_secret_key": password,
        "app_db_host": "db1",
        "app_db_port": 5432,
        "app_db_name": "journal",
        "app_db_user": "journal",
        "app_db_password": password,
        "app_redis_host": "127.0.0.1",
        "app_redis_port": redis_port,
        "app_redis_db": 3,
        "app_redis_password": password,
        "app_env": {"EXTRA_SECRET": password, "PLAIN": "x"},
        "provision_redis_bind": "127.0.0.1",
        "provision_redis_maxmemory": "",
        "provision_redis_maxmemory_policy": "noeviction",
    }
    (out / "vars.json").write_text(json.dumps(variables))
    (out / "play.yml").write_text(PLAY.format(root=ROOT))
    result = subprocess.run(
        [str(BIN / "ansible-playbook"), "-e", f"@{out / 'vars.json'}", str(out / "play.yml")],
        cwd=out,
        env={
            **os.environ,
            "ANSIBLE_COLLECTIONS_PATH": str(ROOT / "playbooks" / "collections"),
            "ANSIBLE_LOCALHOST_WARNING": "false",
            "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    return json.loads((out / "urls.json").read_text())


def systemd_environment(container: str, env_file: Path, tag: str) -> dict:
    """Start a unit with env_file as its EnvironmentFile; the environment its process got."""
    subprocess.run(
        ["docker", "exec", "-i", container, "sh", "-c", f"mkdir -p /etc/opsbook && cat > /etc/opsbook/{tag}.env"],
        input=env_file.read_bytes(), check=True, timeout=60,
    )  # fmt: skip
    unit = (
        "[Unit]\nDescription=opsbook secrets test\n[Service]\nType=oneshot\n"
        f"EnvironmentFile=/etc/opsbook/{tag}.env\n"
        f"ExecStart=/usr/bin/python3 /usr/local/bin/dump-env /run/opsbook-{tag}.json\n"
    )
    subprocess.run(
        ["docker", "exec", "-i", container, "sh", "-c", f"cat > /etc/systemd/system/opsbook-{tag}.service"],
        input=unit, text=True, check=True, timeout=60,
    )  # fmt: skip
    docker("exec", container, "systemctl", "daemon-reload")
    started = docker("exec", container, "systemctl", "start", f"opsbook-{tag}.service", check=False)
    journal = docker("exec", container, "journalctl", "-u", f"opsbook-{tag}.service", "--no-pager", check=False)
    assert started.returncode == 0, started.stderr + journal.stdout
    assert "Ignoring invalid environment" not in journal.stdout, journal.stdout
    return json.loads(docker("exec", container, "cat", f"/run/opsbook-{tag}.json").stdout)


def start_redis(conf: Path, base: Path, port: int) -> subprocess.Popen:
    main = base / "redis.conf"
    main.write_text(f'include {conf}\nsave ""\nappendonly no\ndir {base}\nlogfile {base}/redis.log\ndaemonize no\n')
    process = subprocess.Popen([helpers.find_redis_server(), str(main)])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log = (base / "redis.log").read_text() if (base / "redis.log").exists() else ""
            raise AssertionError(f"redis-server refused the rendered configuration:\n{log[-2000:]}")
        try:
            redis.Redis(host="127.0.0.1", port=port, socket_timeout=1).ping()
        except redis.AuthenticationError:
            return process
        except redis.ConnectionError:
            time.sleep(0.1)
            continue
        process.kill()
        raise AssertionError("redis-server answered without a password")
    process.kill()
    raise AssertionError("redis-server did not start")


@pytest.mark.parametrize("kind", sorted(PASSWORDS))
def test_secrets_reach_systemd_redis_and_clients_unchanged(kind, tmp_path, systemd_container):
    password = PASSWORDS[kind]
    port = helpers.free_port()
    urls = render(tmp_path / "out", password, port)

    # One URL for every role, every part of it encoded.
    assert len(set(urls.values())) == 1, urls
    url = urls["deploy"]
    assert url.startswith("redis://:") and url.endswith(f"@127.0.0.1:{port}/3")
    assert "/" not in url[len("redis://") : url.rindex("@")]

    # systemd reads the env file as the app's units do: every value byte for byte, nothing more.
    env = systemd_environment(systemd_container, tmp_path / "out" / "env", kind)
    for name in ("DJANGO_SECRET_KEY", "DATABASE_PASSWORD", "EXTRA_SECRET"):
        assert env.get(name) == password, (name, env.get(name))
    assert env["REDIS_URL"] == url
    assert env["PLAIN"] == "x" and env["DATABASE_PORT"] == "5432" and env["MEDIA_ROOT"] == "/srv/journal/shared/media"
    assert "INJECTED" not in env

    # Redis runs with the rendered requirepass, which is exactly the password.
    server = start_redis(tmp_path / "out" / "redis-opsbook.conf", tmp_path, port)
    try:
        assert redis.Redis(host="127.0.0.1", port=port, password=password).ping()
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(host="127.0.0.1", port=port, password=password.strip()).ping()
        for candidate in (url, env["REDIS_URL"]):
            client = redis.Redis.from_url(candidate)
            assert client.connection_pool.connection_kwargs["password"] == password
            assert client.ping()
            with kombu.Connection(candidate, connect_timeout=5) as conn:
                assert conn.password == password
                queue = conn.SimpleQueue(f"opsbook-secrets-{kind}")
                queue.put({"kind": kind})
                message = queue.get(timeout=5)
                assert message.payload == {"kind": kind}
                message.ack()
                queue.close()
    finally:
        server.kill()
        server.wait()
