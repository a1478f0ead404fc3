"""The maintenance page on lb1 (nginx): users get 503 and the page, health checks still pass."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import pytest
from lab_helpers import PORT, ansible_playbook

pytestmark = pytest.mark.lab


def get(path: str) -> tuple[int, str, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{PORT}{path}", timeout=10) as response:
            return response.status, response.read().decode(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), dict(exc.headers)


def page(state: str, *extra: str, reports: Path | None = None):
    more = ("-e", f"maintenance_report_dir={reports}") if reports else ()
    result, recap = ansible_playbook("maintenance.yml", "-e", f"maintenance_page={state}", *more, *extra)
    assert result.returncode == 0, result.stdout[-4000:]
    if reports:
        assert not list(reports.glob("*.json"))  # a page switch does nothing else: no report
    return recap


# The page's only test against a deployed app (the Molecule scenario maintenance no longer
# repeats it; provision's checks it on nginx and HAProxy with no app behind them).
def test_page_on_serves_503_to_users_and_lets_health_checks_through(lab, tmp_path):
    try:
        assert page("on", reports=tmp_path)["lb1"] == 1
        status, body, headers = get("/version/")
        assert status == 503
        assert "Down for maintenance" in body
        assert headers["Retry-After"] == "300"
        status, body, _ = get("/health/")
        assert status == 200 and '"status": "ok"' in body
        assert page("on")["lb1"] == 0  # already on: nothing to change
    finally:
        page("off")
    status, _, _ = get("/version/")
    assert status == 200
    assert page("off")["lb1"] == 0


def test_check_mode_reports_without_switching(lab):
    recap = page("on", "--check")
    assert recap["lb1"] == 1
    assert get("/version/")[0] == 200


def test_a_bad_value_is_refused_naming_the_variable(lab):
    result, _ = ansible_playbook("maintenance.yml", "-e", "maintenance_page=maybe")
    assert result.returncode != 0
    assert "maintenance_page" in result.stdout
    assert get("/version/")[0] == 200
