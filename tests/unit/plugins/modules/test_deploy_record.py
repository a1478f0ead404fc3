"""opsbook.webstack.deploy_record on a real app root: the deploy log, the local fact, release retention."""

from __future__ import annotations

import json
import os

from module_runner import run_module

APP = "journal"


def make_root(tmp_path, names, failed=(), current=None, links=None):
    root = tmp_path / "srv"
    for name in names:
        release = root / "releases" / name
        release.mkdir(parents=True)
        (release / "REVISION").write_text(f"rev-of-{name}\n")
    for name in failed:
        (root / "releases" / name / "FAILED").write_text("DEPLOY | Health gate on this host\n")
    for link, name in {**({"current": current} if current else {}), **(links or {})}.items():
        os.symlink(f"releases/{name}", root / link)
    return root


def record(tmp_path, root, check_mode=False, **extra):
    args = {
        "app_root": str(root),
        "app": APP,
        "pointer": str(root / "current"),
        "log_path": str(tmp_path / "log" / "opsbook" / "journal-deploy.jsonl"),
        "fact_path": str(tmp_path / "facts.d" / "opsbook_deploy.fact"),
        "record": {"action": "deploy", "release": "r3", "ref": "v3", "result": "success", "user": "alice"},
        **extra,
    }
    return run_module("deploy_record", args, check_mode=check_mode)


def log_lines(tmp_path):
    return [
        json.loads(line) for line in (tmp_path / "log" / "opsbook" / "journal-deploy.jsonl").read_text().splitlines()
    ]


def fact(tmp_path):
    return json.loads((tmp_path / "facts.d" / "opsbook_deploy.fact").read_text())[APP]["current"]


def test_a_first_deploy_is_logged_and_the_fact_names_what_is_served(tmp_path):
    root = make_root(tmp_path, ["r1"], current="r1")
    result = record(tmp_path, root, record={"release": "r1", "ref": "v1", "result": "success"})
    assert result.changed and not result.failed
    (line,) = log_lines(tmp_path)
    assert line["app"] == APP and line["pointer"] == "current"
    assert line["release"] == "r1" and line["serving"] == "r1" and line["previous"] == ""
    assert line["result"] == "success" and line["time"].endswith("Z")
    entry = fact(tmp_path)
    assert entry["release"] == "r1" and entry["previous"] == "" and entry["revision"] == "rev-of-r1"
    assert entry["pointer"] == str(root / "current") and entry["last_result"] == "success"
    assert oct((tmp_path / "facts.d" / "opsbook_deploy.fact").stat().st_mode & 0o777) == "0o644"
    assert oct((tmp_path / "log" / "opsbook" / "journal-deploy.jsonl").stat().st_mode & 0o777) == "0o644"


def test_previous_moves_only_when_what_is_served_moves(tmp_path):
    root = make_root(tmp_path, ["r1", "r2"], current="r1")
    record(tmp_path, root, record={"release": "r1", "result": "success"})
    first = fact(tmp_path)
    # A deploy of r2 that was rolled back: r1 is still served; release, previous and
    # updated stay, the last result changes.
    record(tmp_path, root, previous="r1", record={"release": "r2", "result": "rolled_back"})
    entry = fact(tmp_path)
    assert entry["release"] == "r1" and entry["previous"] == "" and entry["updated"] == first["updated"]
    assert entry["last_result"] == "rolled_back"
    # Then r2 goes live: previous becomes r1.
    os.unlink(root / "current")
    os.symlink("releases/r2", root / "current")
    result = record(tmp_path, root, previous="r1", record={"release": "r2", "result": "success"})
    assert fact(tmp_path)["release"] == "r2" and fact(tmp_path)["previous"] == "r1"
    assert result["serving"] == "r2" and result["revision"] == "rev-of-r2"
    assert [line["result"] for line in log_lines(tmp_path)] == ["success", "rolled_back", "success"]


def test_other_apps_and_pointers_in_the_fact_are_kept(tmp_path):
    root = make_root(tmp_path, ["r1"], current="r1")
    facts = tmp_path / "facts.d"
    facts.mkdir()
    (facts / "opsbook_deploy.fact").write_text(
        json.dumps({"other": {"current": {"release": "x"}}, APP: {"blue": {"release": "b"}}})
    )
    record(tmp_path, root)
    data = json.loads((facts / "opsbook_deploy.fact").read_text())
    assert data["other"] == {"current": {"release": "x"}}
    assert data[APP]["blue"] == {"release": "b"} and data[APP]["current"]["release"] == "r1"


def test_prune_removes_failed_and_old_releases_never_protected_or_pointed_at(tmp_path):
    names = [f"2026110{i}T000000Z-v{i}" for i in range(1, 9)]  # r1 oldest .. r8 newest
    root = make_root(
        tmp_path,
        names,
        failed=[names[7], names[2]],  # the newest and an old one failed
        current=names[6],
        links={"blue": names[0]},  # a blue-green slot still points at the oldest
    )
    result = record(tmp_path, root, prune=True, keep=3, previous=names[5], protect=[names[6], names[1]])
    removed = {os.path.basename(item["path"]): item["reason"] for item in result["removed"]}
    # Good ones: 1 2 4 5 6 7; the newest 3 (5 6 7) stay; 1 (blue) and 2 (protected) stay.
    assert removed == {names[7]: "marked FAILED", names[2]: "marked FAILED", names[3]: "beyond the 3 kept"}
    left = sorted(os.listdir(root / "releases"))
    assert left == [names[0], names[1], names[4], names[5], names[6]]


def test_failed_releases_do_not_count_towards_the_kept_ones(tmp_path):
    names = ["r1", "r2", "r3", "r4"]
    root = make_root(tmp_path, names, failed=["r3", "r4"], current="r2")
    result = record(tmp_path, root, prune=True, keep=2)
    assert sorted(os.path.basename(i["path"]) for i in result["removed"]) == ["r3", "r4"]
    assert sorted(os.listdir(root / "releases")) == ["r1", "r2"]


def test_check_mode_reports_and_changes_nothing(tmp_path):
    names = ["r1", "r2", "r3"]
    root = make_root(tmp_path, names, current="r3")
    result = record(tmp_path, root, check_mode=True, prune=True, keep=1)
    assert [os.path.basename(i["path"]) for i in result["removed"]] == ["r1", "r2"]
    assert sorted(os.listdir(root / "releases")) == names
    assert not (tmp_path / "log").exists() and not (tmp_path / "facts.d").exists()
    assert result["fact"]["release"] == "r3"


def test_a_fact_that_is_not_json_fails_naming_it_and_nothing_is_written(tmp_path):
    root = make_root(tmp_path, ["r1", "r2"], current="r2")
    facts = tmp_path / "facts.d"
    facts.mkdir()
    (facts / "opsbook_deploy.fact").write_text("{not json")
    result = record(tmp_path, root, prune=True, keep=1)
    assert result.failed
    assert "opsbook_deploy.fact is not JSON" in result.msg
    assert sorted(os.listdir(root / "releases")) == ["r1", "r2"]
    assert not (tmp_path / "log").exists()
