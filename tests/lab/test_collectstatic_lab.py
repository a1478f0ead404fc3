"""collectstatic once per build group (issue 24 item 2), or on each host where it must be.

The demo's deploy (scripts/demo.sh, deploy_build once) is read, not repeated: its one
`manage.py collectstatic` ran on app1, the build host, in the install play (before the
migrations), and app2 serves the same collected files from the release it unpacked. One
deploy of its own puts STATIC_ROOT outside the release (app_env): the files cannot travel
with the release, so collectstatic runs on every host after the migrations, into that
directory on each.
"""

from __future__ import annotations

import json
import re

import pytest
from lab_helpers import current_release, deploy_same_ref_anew, lab_exec

pytestmark = pytest.mark.lab

APPS = ("app1", "app2")
SHARED_STATIC = "/srv/journal/shared/static-test"


def collectstatic_runs(output: str) -> list[tuple[str, list[str]]]:
    """(play, hosts it ran on, sorted: forks finish in any order) for every `manage.py collectstatic` task, in order."""
    play, runs, current = "", [], None
    for line in output.splitlines():
        if line.startswith("PLAY ["):
            play, current = line[6 : line.index("]")], None
        elif line.startswith("TASK ["):
            current = (play, []) if "manage.py collectstatic" in line else None
            if current:
                runs.append(current)
        elif current and (m := re.match(r"^(?:changed|ok): \[([^\]]+)\]", line)):
            current[1].append(m.group(1))
    return [(name, sorted(hosts)) for name, hosts in runs]


def static_tree(host: str, directory: str) -> str:
    """Every file under directory on host, with its sha256."""
    listing = f"cd {directory} && find . -type f -exec sha256sum {{}} + | sort -k2"
    return lab_exec(host, "sh", "-c", listing).stdout


def test_the_demo_deploy_collected_static_files_once_and_shipped_them(demo_output, lab):
    _, log = demo_output
    deploy = log.split("== 5/10 deploy", 1)[1].split("== 6/10", 1)[0]
    if not collectstatic_runs(deploy):
        # The demo's deploy installed nothing (a re-run on a lab left up): a new release of its ref.
        result, _, _ = deploy_same_ref_anew(hosts=APPS)
        assert result.returncode == 0, result.stdout[-4000:]
        deploy = result.stdout
    assert collectstatic_runs(deploy) == [("Install the release", ["app1"])], collectstatic_runs(deploy)
    # Whatever release the hosts serve now, its collected files are the same on both.
    release = current_release("app1")
    trees = {host: static_tree(host, f"/srv/journal/releases/{release}/staticfiles") for host in APPS}
    assert "./admin/css/base.css" in trees["app1"], trees["app1"][:500]
    assert trees["app1"] == trees["app2"]


def test_collectstatic_runs_on_each_host_when_static_root_is_outside_the_release(lab):
    for host in APPS:
        lab_exec(host, "rm", "-rf", SHARED_STATIC)
        lab_exec(host, "install", "-d", "-o", "journal", "-g", "journal", SHARED_STATIC)
    app_env = json.dumps({"app_env": {"DJANGO_ALLOWED_HOSTS": "*", "STATIC_ROOT": SHARED_STATIC}})
    try:
        # A new release of the ref served now (the demo's v1), so the lab stays on it.
        result, _, before = deploy_same_ref_anew("-e", app_env, hosts=APPS)
        assert result.returncode == 0, result.stdout[-4000:]
        runs = collectstatic_runs(result.stdout)
        assert runs == [("Migrate and collect static files", list(APPS))], runs
        trees = {host: static_tree(host, SHARED_STATIC) for host in APPS}
        assert "./admin/css/base.css" in trees["app1"], trees["app1"][:500]
        assert trees["app1"] == trees["app2"]
        release = current_release("app1")
        assert release != before and release.endswith("-" + before.rsplit("-", 1)[1])
        assert current_release("app2") == release
    finally:
        # The environment file as the lab's own app_env renders it (the next deploy changes nothing there).
        for host in APPS:
            lab_exec(host, "sed", "-i", "/^STATIC_ROOT=/d", "/srv/journal/shared/env", check=False)
            lab_exec(host, "rm", "-rf", SHARED_STATIC, check=False)
