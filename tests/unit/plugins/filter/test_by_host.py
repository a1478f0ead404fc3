"""by_host: per-host messages of the validation play as one list (plugins/filter/by_host.py)."""

from __future__ import annotations

from ansible_collections.opsbook.webstack.plugins.filter.by_host import by_host


def test_a_message_every_host_has_names_no_host():
    assert by_host({"app1": ["app_name is bad"], "app2": ["app_name is bad"]}) == ["app_name is bad"]


def test_a_message_some_hosts_have_names_them_in_host_order():
    got = by_host({"lb1": [], "app1": ["x", "y"], "app2": [], "db1": ["y"]})
    assert got == ["x (on app1)", "y (on app1, db1)"]


def test_each_message_once_in_first_seen_order():
    got = by_host({"a": ["m2", "m1", "m2"], "b": ["m1", "m3"]})
    assert got == ["m2 (on a)", "m1", "m3 (on b)"]


def test_no_host_no_message():
    assert by_host({}) == []
    assert by_host({"a": [], "b": None}) == []
