"""The lab images' bytecode cache for Ansible's module payloads is in use (docs/testing.md).

After the demo every lab host has run modules as root: each host's cache holds the compiled
module_utils, in a root-only directory. The hook itself: tests/unit/test_payload_cache.py.
"""

from __future__ import annotations

import pytest
from lab_helpers import lab_exec

pytestmark = pytest.mark.lab


@pytest.mark.parametrize("host", ["lb1", "app1", "db1"])
def test_the_demo_filled_each_hosts_payload_cache(lab, host):
    stat = lab_exec(host, "stat", "-c", "%U %a", "/var/cache/opsbook-payload-pyc").stdout.split()
    assert stat == ["root", "700"], stat
    count = int(lab_exec(host, "sh", "-c", "ls /var/cache/opsbook-payload-pyc | wc -l").stdout)
    # ansible.module_utils.basic alone brings some 50 files.
    assert count > 50, count
