"""Session fixtures: real PostgreSQL and Redis servers, and the sample application's build products.

    postgres_server  helpers.PostgresServer  host, port, user, password, dbname, socket_dir, bin_dir,
                                              data_dir, log_path; dsn()/conninfo(), url(), env(), connect(),
                                              execute(), create_role(), create_database(), drop_database()
    redis_server     helpers.RedisServer     host, port, password, url, url_for(db), env(), client()
    webapp_wheelhouse  Path   wheels for examples/webapp (cached in $OPSBOOK_CACHE/wheelhouse)
    webapp_venv        Path   a virtualenv with the sample app installed from that wheelhouse
    webapp_repo        helpers.WebappRepo   bare git repo with tags v1..v4 (path, commits, checkout())

A service that cannot be provided fails the tests that need it with the reason;
it is never skipped, so a machine without PostgreSQL cannot pass silently.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import helpers

# The collection's own code imports as ansible_collections.opsbook.webstack.*, as Ansible
# loads it, through the links in playbooks/collections.
_COLLECTIONS = str(helpers.REPO_ROOT / "playbooks" / "collections")
if _COLLECTIONS not in sys.path:
    sys.path.insert(0, _COLLECTIONS)


def _fail(exc: helpers.HarnessError) -> None:
    pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[helpers.PostgresServer]:
    try:
        server = helpers.start_postgres()
    except helpers.HarnessError as exc:
        _fail(exc)
    try:
        yield server
    finally:
        helpers.stop_postgres(server)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[helpers.RedisServer]:
    try:
        server = helpers.start_redis()
    except helpers.HarnessError as exc:
        _fail(exc)
    try:
        yield server
    finally:
        helpers.stop_redis(server)


@pytest.fixture(scope="session")
def webapp_wheelhouse() -> Path:
    try:
        return helpers.build_wheelhouse()
    except helpers.HarnessError as exc:
        _fail(exc)


@pytest.fixture(scope="session")
def webapp_venv(webapp_wheelhouse: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    try:
        return helpers.create_webapp_venv(tmp_path_factory.mktemp("webapp") / "venv", webapp_wheelhouse)
    except helpers.HarnessError as exc:
        _fail(exc)


@pytest.fixture(scope="session")
def webapp_repo(tmp_path_factory: pytest.TempPathFactory) -> helpers.WebappRepo:
    try:
        return helpers.build_webapp_repo(tmp_path_factory.mktemp("webapp-repo") / "journal.git")
    except helpers.HarnessError as exc:
        _fail(exc)


# The suite runs on two pytest-xdist workers (scripts/test.sh: -n 2 --dist loadgroup
# --no-loadscope-reorder). The lab tests share one lab and walk it in order, and the Molecule
# scenarios are long; each set is one group, so it stays on one worker in collection order while
# the other worker runs the other set. Both groups go first so the two long sets start at once
# (without --no-loadscope-reorder xdist would sort the groups by their number of tests and start
# a unit file with more tests than the Molecule set first). Every other test file is a group of
# its own: its module-scoped fixtures (test_validate's 35 playbook runs, a RabbitMQ node, a
# systemd container, a built collection artifact) run once, on one worker, not once per worker
# that got one of its tests. Without xdist the marks change nothing.
# test_sample_app.py walks one database through v1, v2 and back in file order (one module
# fixture), which the group per file keeps too.
_GROUPS = (("tests/lab/", "lab"), ("tests/molecule/", "molecule"))
# Scenarios that run in the lab's group instead (after the lab tests, on the lab's worker), so
# both workers take about as long. maintenance moved back to the Molecule side on 2026-12-06,
# when issue 23's lab tests (TLS, encrypted copies, PITR, migration reversal) and the
# collectstatic test added about 10 min to the lab worker; on 2026-12-07 backup_restore (which
# ran here) and maintenance became one scenario, operations, on the Molecule side: the lab
# worker takes the bring-your-own-app tests instead. docs/testing.md has the latest times.
_LAB_SIDE_SCENARIOS: set[str] = set()


# tryfirst: xdist reads the group marks in its own pytest_collection_modifyitems; they must be there by then.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    first: dict[str, list[pytest.Item]] = {name: [] for _, name in _GROUPS}
    rest: list[pytest.Item] = []
    for item in items:
        path = Path(str(item.path)).relative_to(helpers.REPO_ROOT).as_posix()
        group = next((name for prefix, name in _GROUPS if path.startswith(prefix)), None)
        callspec = getattr(item, "callspec", None)
        if group == "molecule" and callspec and callspec.params.get("scenario") in _LAB_SIDE_SCENARIOS:
            group = "lab"
        if group is None:
            if not any(mark.name == "xdist_group" for mark in item.iter_markers()):
                item.add_marker(pytest.mark.xdist_group(path))
            rest.append(item)
            continue
        item.add_marker(pytest.mark.xdist_group(group))
        first[group].append(item)
    items[:] = [item for name in first for item in first[name]] + rest
