"""The copy planner: what a backup destination lacks, judged against the manifests."""

import pytest
from ansible_collections.opsbook.webstack.plugins.module_utils.backup_copy import CopyPlanError, listing, plan

A = "a" * 64
B = "b" * 64
M1 = "1" * 64
BACKUPS = [{"id": "t1", "file": "journal-t1.dump", "sha256": A, "size": 100, "verified": True}]
LOCAL_MANIFESTS = {"journal-t1.json": {"sha256": M1, "size": 10}}


def test_listing_reads_names_hashes_and_sizes_and_leaves_out_missing_names():
    text = f"journal-t1.dump {A} 100\n  journal-t1.json missing 0\n\n"
    assert listing(text) == {"journal-t1.dump": {"sha256": A, "size": 100}}


def test_listing_refuses_a_line_it_cannot_read():
    with pytest.raises(CopyPlanError, match="bad size"):
        listing(f"journal-t1.dump {A} many")


def test_a_backup_missing_at_the_destination_is_copied_whole():
    [entry] = plan(BACKUPS, {}, LOCAL_MANIFESTS, "journal")
    assert entry["copy_data"] and entry["copy_manifest"] and entry["problem"] == ""
    assert entry["manifest"] == "journal-t1.json"


def test_a_complete_copy_is_left_alone():
    held = {"journal-t1.dump": {"sha256": A, "size": 100}, "journal-t1.json": {"sha256": M1, "size": 10}}
    [entry] = plan(BACKUPS, held, LOCAL_MANIFESTS, "journal")
    assert not entry["copy_data"] and not entry["copy_manifest"]


def test_a_copy_with_another_sha256_is_copied_again_and_named():
    held = {"journal-t1.dump": {"sha256": B, "size": 100}, "journal-t1.json": {"sha256": M1, "size": 10}}
    [entry] = plan(BACKUPS, held, LOCAL_MANIFESTS, "journal")
    assert entry["copy_data"] and entry["copy_manifest"]
    assert f"sha256 {B}" in entry["problem"] and f"sha256 {A}" in entry["problem"]


def test_a_copy_of_another_size_is_copied_again():
    held = {"journal-t1.dump": {"sha256": A, "size": 99}, "journal-t1.json": {"sha256": M1, "size": 10}}
    assert plan(BACKUPS, held, LOCAL_MANIFESTS, "journal")[0]["copy_data"]


def test_only_a_missing_or_different_manifest_copies_just_the_manifest():
    held = {"journal-t1.dump": {"sha256": A, "size": 100}}
    [entry] = plan(BACKUPS, held, LOCAL_MANIFESTS, "journal")
    assert not entry["copy_data"] and entry["copy_manifest"]


def test_a_manifest_without_sha256_is_refused_naming_the_backup():
    with pytest.raises(CopyPlanError, match="backup t1 has no sha256"):
        plan([{"id": "t1", "file": "x.dump", "size": 1}], {}, LOCAL_MANIFESTS, "journal")


def test_the_archives_a_manifest_lists_are_copied_and_checked_like_the_dump():
    media = {"file": "journal-t1-media.tar.gz", "sha256": B, "size": 7}
    backups = [{**BACKUPS[0], "files": {"media": media}}]
    held = {"journal-t1.dump": {"sha256": A, "size": 100}, "journal-t1.json": {"sha256": M1, "size": 10}}
    [entry] = plan(backups, held, LOCAL_MANIFESTS, "journal")
    assert entry["copy_parts"] == ["journal-t1-media.tar.gz"] and entry["copy_manifest"]
    assert [p["file"] for p in entry["parts"]] == ["journal-t1.dump", "journal-t1-media.tar.gz"]
    held["journal-t1-media.tar.gz"] = {"sha256": B, "size": 7}
    assert plan(backups, held, LOCAL_MANIFESTS, "journal")[0]["copy_data"] is False


def test_an_archive_listed_without_its_sha256_is_refused():
    backups = [{**BACKUPS[0], "files": {"media": {"file": "m.tar.gz", "size": 7}}}]
    with pytest.raises(CopyPlanError, match="lists the file media without sha256"):
        plan(backups, {}, LOCAL_MANIFESTS, "journal")


# Issue 19 item 2: the store's manifests are written through the db host's key; a manifest
# naming a path outside the directory must never make anyone delete (or copy) it. The planner
# refuses it with the same check and message as the local rotation (module_utils/retention.py).
@pytest.mark.parametrize(
    ("backup", "name"),
    [
        ({**BACKUPS[0], "file": "../../etc/passwd"}, "../../etc/passwd"),
        ({**BACKUPS[0], "file": "/etc/passwd"}, "/etc/passwd"),
        ({**BACKUPS[0], "file": ".."}, ".."),
        ({**BACKUPS[0], "files": {"media": {"file": "../x", "sha256": B, "size": 7}}}, "../x"),
        ({**BACKUPS[0], "id": "../../etc/cron.d/x"}, "journal-../../etc/cron.d/x.json"),
    ],
)
def test_a_hostile_manifest_naming_a_file_outside_the_directory_is_refused(backup, name):
    with pytest.raises(CopyPlanError, match=f"names {name!r}, which is not a file of"):
        plan([backup], {}, LOCAL_MANIFESTS, "journal")


def test_the_planner_and_the_local_rotation_share_one_name_check():
    from ansible_collections.opsbook.webstack.plugins.module_utils import backup_copy, retention, retention_apply

    assert backup_copy.data_files is retention.data_files and retention_apply.data_files is retention.data_files
