"""deploy_build (issue 24 item 2): the release built once and shipped, or built on every host.

The lab's app hosts share one platform. pip is made to log on both (a site-wide /etc/pip.conf
with `log =`, which every pip on the host reads): after a deploy with the default
deploy_build once, only the first app host has run pip, and both serve the new release, app2
from the release unpacked from app1's build (its BUILT_ON, written by `uname -n` where the
build ran, names app1's container). The same with deploy_build per_host: pip ran on both. A
misspelt value is refused before anything changes.
"""

from __future__ import annotations

import json

import pytest
from lab_helpers import ansible_playbook, lab_exec

pytestmark = pytest.mark.lab

APPS = ("app1", "app2")
PIP_LOG = "/tmp/opsbook-test-build-once-pip.log"


def current_release(host: str) -> str:
    return lab_exec(host, "readlink", "/srv/journal/current").stdout.strip().removeprefix("releases/")


def health_version(host: str) -> str:
    out = lab_exec(host, "curl", "-fsS", "http://127.0.0.1:8000/health/").stdout
    return json.loads(out)["version"]


def pip_ran(host: str) -> bool:
    return lab_exec(host, "test", "-s", PIP_LOG, check=False).returncode == 0


@pytest.fixture
def pip_logging(lab):
    for host in APPS:
        lab_exec(host, "rm", "-f", PIP_LOG)
        lab_exec(host, "sh", "-c", f"printf '[global]\\nlog = {PIP_LOG}\\n' > /etc/pip.conf")
    yield
    for host in APPS:
        lab_exec(host, "rm", "-f", "/etc/pip.conf", PIP_LOG, check=False)


def deploy(ref: str, *extra: str) -> str:
    for host in APPS:
        lab_exec(host, "rm", "-f", PIP_LOG)
    result, recap = ansible_playbook("deploy.yml", "-e", f"deploy_ref={ref}", *extra)
    assert result.returncode == 0, result.stdout[-4000:]
    assert recap["app1"] > 0 and recap["app2"] > 0, recap
    release = current_release("app1")
    assert release.endswith(f"-{ref}"), release
    for host in APPS:
        assert current_release(host) == release, host
        # The host's own Gunicorn, from the release it unpacked or built, serves that release.
        assert health_version(host) == release, host
        rel = f"/srv/journal/releases/{release}"
        assert lab_exec(host, "test", "-e", f"{rel}/.installing", check=False).returncode != 0, host
        owner = lab_exec(host, "stat", "-c", "%U", f"{rel}/venv/bin/python3").stdout.strip()
        assert owner == "journal", (host, owner)
    return release


def test_deploy_builds_the_virtualenv_once_and_ships_it(pip_logging):
    before = current_release("app1")
    other = "v1" if before.endswith("-v2") else "v2"
    names = {host: lab_exec(host, "uname", "-n").stdout.strip() for host in APPS}

    release = deploy(other)
    assert pip_ran("app1"), "pip did not run on app1, the build host"
    assert not pip_ran("app2"), "pip ran on app2: the release was built there, not shipped"
    for host in APPS:
        built_on = lab_exec(host, "cat", f"/srv/journal/releases/{release}/BUILT_ON").stdout.strip()
        assert built_on == names["app1"], (host, built_on)
    # The shipped tree is the built one: the same files, the same installed distributions
    # (bytecode caches aside: app1 ran the migrations, which compiled the migration modules).
    listings = {
        host: lab_exec(
            host, "sh", "-c", f"cd /srv/journal/releases/{release} && find . -name __pycache__ -prune -o -print | sort"
        ).stdout
        for host in APPS
    }
    assert listings["app1"] == listings["app2"]
    freeze = {
        host: lab_exec(host, f"/srv/journal/releases/{release}/venv/bin/python", "-m", "pip", "freeze").stdout
        for host in APPS
    }
    assert freeze["app1"] == freeze["app2"] and "Django" in freeze["app1"], freeze

    # Back to the ref served before, every host building its own.
    release = deploy(before.rsplit("-", 1)[1], "-e", "deploy_build=per_host")
    assert pip_ran("app1") and pip_ran("app2"), "with deploy_build per_host pip runs on every host"
    for host in APPS:
        built_on = lab_exec(host, "cat", f"/srv/journal/releases/{release}/BUILT_ON").stdout.strip()
        assert built_on == names[host], (host, built_on)


def test_a_misspelt_deploy_build_is_refused_before_anything_changes(lab):
    before = {host: current_release(host) for host in APPS}
    result, recap = ansible_playbook("deploy.yml", "-e", "deploy_ref=v1", "-e", "deploy_build=twice")
    assert result.returncode != 0
    assert "deploy_build" in result.stdout and "twice" in result.stdout, result.stdout[-3000:]
    assert all(changed == 0 for changed in recap.values()), recap
    assert {host: current_release(host) for host in APPS} == before
