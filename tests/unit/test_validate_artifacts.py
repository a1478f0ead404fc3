"""Results one job reports (set_stats) reach the next job of an AWX workflow as extra variables.

validate accepts such a name where nothing of the run reads it (health.yml after deploy.yml) and
refuses it, naming the role that reports it and the file that computes it, where the run would have
its own value overridden (deploy.yml given deploy_release_id)."""

from __future__ import annotations

from pathlib import Path

from test_validate import PLAYBOOKS, ROOT, Case, describe, run_case

DEPLOY_RESULTS = "deploy_release_id=20260101T000000Z-v1 deploy_result=success deploy_hosts=[] deploy_duration=3.5"
BACKUP_RESULTS = "backup_manifest=/x/manifest.json backup_path=/x backup_size=1 backup_verified=true"


def test_the_roles_reported_results_are_found() -> None:
    from ansible_collections.opsbook.webstack.plugins.action.validate_run import reported_variables

    reported = reported_variables(ROOT / "roles")
    assert reported["deploy_release_id"] == "deploy"
    assert reported["backup_manifest"] == "backup"
    assert reported["blue_green_active"] == "blue_green"


def test_readers_follow_the_roles_a_playbook_uses() -> None:
    from ansible_collections.opsbook.webstack.plugins.action.validate_run import readers, roles_of

    assert roles_of([PLAYBOOKS / "health.yml"], ROOT / "roles") == {"validate", "maintenance"}
    # deploy.yml runs the backup role before the migrations: both are reached.
    assert {"deploy", "backup", "validate"} <= roles_of([PLAYBOOKS / "deploy.yml"], ROOT / "roles")
    names = ["deploy_release_id", "backup_manifest"]
    assert readers(names, [PLAYBOOKS / "health.yml"], ROOT / "roles") == {}
    found = readers(names, [PLAYBOOKS / "deploy.yml"], ROOT / "roles")
    assert set(found) == set(names), found


def _run(tmp_path: Path, playbook: str, *extra: str):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    # --tags: only validate's tasks (tagged always) run; the inventory's hosts are unreachable.
    case = Case(playbook, "artifacts", playbook=playbook, args=(*extra, "--tags", "opsbook_validate_only"))
    return run_case(case, tmp_path / "work", cwd)


def test_health_after_a_deploy_accepts_the_deploys_results(tmp_path: Path) -> None:
    run = _run(tmp_path, "health.yml", "-e", DEPLOY_RESULTS, "-e", BACKUP_RESULTS)
    assert run.returncode == 0, describe(run)
    assert "given with -e:" not in run.output and "is a result the" not in run.output, describe(run)


def test_a_misspelt_name_is_still_refused_beside_results(tmp_path: Path) -> None:
    run = _run(tmp_path, "health.yml", "-e", DEPLOY_RESULTS, "-e", "deploy_reff=v2")
    assert run.returncode != 0, describe(run)
    assert "Unknown variable 'deploy_reff' given with -e: did you mean 'deploy_ref'" in run.output, describe(run)
    assert "'deploy_release_id' given with -e" not in run.output, describe(run)


def test_a_deploy_refuses_the_results_it_computes_itself(tmp_path: Path) -> None:
    run = _run(tmp_path, "deploy.yml", "-e", DEPLOY_RESULTS)
    assert run.returncode != 0, describe(run)
    assert (
        "'deploy_release_id' given with -e is a result the deploy role reports (set_stats), "
        "and this run computes its own" in run.output
    ), describe(run)
