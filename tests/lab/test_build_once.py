"""deploy_build (issue 24 item 2): the release built once and shipped, or built on every host.

The lab's app hosts share one platform. The demo's deploy (scripts/demo.sh, default
deploy_build once) is read, not repeated: its log names the host that ran the build step
(release.sh build, the only pip run of a deploy) and the host that unpacked the shipped
release, both hosts serve the same tree and distributions, and app2's copy records app1 as
the host that built it (BUILT_ON, written by `uname -n` where the build ran). One deploy of
its own, with deploy_build per_host, makes pip log on both (a site-wide /etc/pip.conf with
`log =`, which every pip on the host reads): pip ran on both, each release built on its host.
A misspelt value is refused before anything changes.
"""

from __future__ import annotations

import json

import pytest
from lab_helpers import ansible_playbook, current_release, deploy_same_ref_anew, lab_exec

pytestmark = pytest.mark.lab

APPS = ("app1", "app2")
PIP_LOG = "/tmp/opsbook-test-build-once-pip.log"


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


def deploy_checked(result, recap: dict[str, int], ref: str) -> str:
    """The release a deploy of ref installed, checked on both hosts."""
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


BUILD_TASK = "DEPLOY | Create the release with its virtualenv and requirements"
UNPACK_TASK = "DEPLOY | Unpack the release built on the build host"


def task_hosts(log: str, task: str) -> dict[str, set[str]]:
    """Per status (changed, ok, skipping), the hosts of one task in a deploy's output."""
    blocks = [b for b in log.split("\nTASK [")[1:] if b.split("]", 1)[0].endswith(task)]
    assert len(blocks) <= 1, (task, len(blocks))
    hosts: dict[str, set[str]] = {}
    # No such task: the deploy installed nothing (its install block did not run).
    for line in (blocks[0] if blocks else "").splitlines():
        status, _, rest = line.partition(": [")
        if status in ("changed", "ok", "skipping") and "]" in rest:
            hosts.setdefault(status, set()).add(rest.split("]", 1)[0])
    return hosts


def fresh_release(*extra: str) -> tuple[str, str]:
    """Deploy a new release of the ref served now on both hosts; (release, the deploy's output)."""
    for host in APPS:
        lab_exec(host, "rm", "-f", PIP_LOG)
    result, recap, before = deploy_same_ref_anew(*extra, hosts=APPS)
    release = deploy_checked(result, recap, before.rsplit("-", 1)[1])
    assert release != before
    return release, result.stdout


def test_a_deploy_builds_the_virtualenv_once_and_ships_it(demo_output, lab):
    # The demo's deploy (step 5, a fresh lab as in CI) is read; when it installed nothing (the
    # lab was already on its ref: a re-run on a lab left up), a deploy of a fresh release is.
    _, log = demo_output
    deploy_log = log.split("== 5/10 deploy", 1)[1].split("== 6/10", 1)[0]
    release = current_release("app1")
    if not task_hosts(deploy_log, BUILD_TASK).get("changed"):
        release, deploy_log = fresh_release()
    # release.sh build (virtualenv and pip) ran on app1 only; app2 unpacked app1's release.
    built = task_hosts(deploy_log, BUILD_TASK)
    assert built.get("changed") == {"app1"} and built.get("skipping") == {"app2"}, built
    unpacked = task_hosts(deploy_log, UNPACK_TASK)
    assert unpacked.get("changed") == {"app2"}, unpacked
    assert current_release("app2") == release, release
    names = {host: lab_exec(host, "uname", "-n").stdout.strip() for host in APPS}
    for host in APPS:
        assert health_version(host) == release, host
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


def test_deploy_build_per_host_runs_pip_on_every_host(pip_logging):
    names = {host: lab_exec(host, "uname", "-n").stdout.strip() for host in APPS}
    release, _ = fresh_release("-e", "deploy_build=per_host")
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
