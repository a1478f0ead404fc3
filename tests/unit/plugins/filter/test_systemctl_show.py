"""The systemctl_show filter against the output of a real systemctl show's format."""

from __future__ import annotations

from ansible_collections.opsbook.webstack.plugins.filter.systemctl_show import FilterModule

systemctl_show = FilterModule().filters()["systemctl_show"]

OUTPUT = """ActiveState=active
SubState=running
UnitFileState=enabled

ActiveState=inactive
SubState=dead
UnitFileState=

ActiveState=failed
SubState=failed
UnitFileState=disabled
"""


def test_one_mapping_per_unit_in_the_order_given_a_missing_unit_included():
    states = systemctl_show(OUTPUT, ["redis.service", "nosuch.service", "journal-worker.service"])
    assert states == {
        "redis.service": {"ActiveState": "active", "SubState": "running", "UnitFileState": "enabled"},
        "nosuch.service": {"ActiveState": "inactive", "SubState": "dead", "UnitFileState": ""},
        "journal-worker.service": {"ActiveState": "failed", "SubState": "failed", "UnitFileState": "disabled"},
    }


def test_a_value_with_an_equals_sign_is_kept_whole_and_no_output_gives_empty_mappings():
    assert systemctl_show("Environment=A=1 B=2\n", ["x.service"]) == {"x.service": {"Environment": "A=1 B=2"}}
    assert systemctl_show("", ["a.service", "b.service"]) == {"a.service": {}, "b.service": {}}
    assert systemctl_show(None, []) == {}
