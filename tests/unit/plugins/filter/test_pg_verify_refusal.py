"""Issue 19 item 6: the restore's verdict on a pg_dump_verify result (failed_when: false clears
`failed`): a backup passes only when the level asked for is among the levels passed. A failure
that carries no `reason` (the module killed, its arguments refused) is a refusal too."""

from __future__ import annotations

import pytest
from ansible_collections.opsbook.webstack.plugins.filter.pg_verify_refusal import pg_verify_refusal

PASSED = {"levels_passed": ["header", "structure", "read", "content"], "level_reached": "content", "format": "custom"}


def test_a_backup_verified_up_to_the_level_passes():
    assert pg_verify_refusal(PASSED, "content") == ""
    assert pg_verify_refusal(PASSED, "structure") == ""


@pytest.mark.parametrize(
    ("result", "refusal"),
    [
        # Killed (out of memory), or a crash before the module could say why: no reason.
        ({"msg": "MODULE FAILURE: See stdout/stderr for the exact error", "rc": 137}, "no verdict at level content"),
        ({"msg": "value of level must be one of: header, ...", "failed": True}, "no verdict at level content"),
        ({}, "no verdict at level content"),
        # A reasoned failure, as the module reports it.
        (
            {**PASSED, "levels_passed": ["header"], "reason": "truncated", "failed_level": "structure"},
            "truncated at level structure",
        ),  # fmt: skip
        # A level short of the one asked for.
        ({**PASSED, "levels_passed": ["header", "structure"]}, "no verdict at level content"),
    ],
)
def test_anything_short_of_the_level_is_refused(result, refusal):
    assert pg_verify_refusal(result, "content") == refusal
