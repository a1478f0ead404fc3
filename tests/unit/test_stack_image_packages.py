"""The stack image holds only packages some role installs itself, so it cannot hide a missing install.

The lab and most Molecule hosts start from images/stack (the systemd image plus every Debian
package provision installs, disabled). A package there that no role's apt task names would let a
role work on those hosts and fail on a fresh Debian host; only three hosts of the `deploy`
scenario (md-lb2, md-app2, md-db1) start bare. This test reads the image's package list and every
apt task of roles/*/tasks/ (blocks included, list variables resolved from the roles' defaults).
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "images" / "stack" / "Dockerfile"
PACKAGE = r"[a-z0-9][a-z0-9.+-]*"


def stack_packages() -> set[str]:
    """The packages of the image's first `apt-get install` (the later layer adds sshd for the lab)."""
    text = DOCKERFILE.read_text()
    install = text.split("apt-get install -y --no-install-recommends", 1)[1].split("&&", 1)[0]
    return set(re.findall(rf"(?<![\w-])({PACKAGE})(?![\w.+-])", install.replace("\\", " ")))


def role_defaults() -> dict:
    merged: dict = {}
    for path in sorted(ROOT.glob("roles/*/defaults/main.yml")):
        merged.update(yaml.safe_load(path.read_text()) or {})
    return merged


def tasks(items):
    for item in items or []:
        if isinstance(item, dict):
            yield item
            for key in ("block", "rescue", "always"):
                yield from tasks(item.get(key))


def apt_names(defaults: dict) -> set[str]:
    names: set[str] = set()
    for path in sorted(ROOT.glob("roles/*/tasks/*.yml")):
        for task in tasks(yaml.safe_load(path.read_text())):
            apt = task.get("ansible.builtin.apt")
            if not isinstance(apt, dict) or "name" not in apt:
                continue
            values = apt["name"] if isinstance(apt["name"], list) else [apt["name"]]
            for value in values:
                whole = re.fullmatch(r"\{\{\s*(\w+)\s*\}\}", value)
                if whole and isinstance(defaults.get(whole.group(1)), list):
                    names.update(defaults[whole.group(1)])
                    continue
                value = re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: str(defaults.get(m.group(1), m.group(0))), value)
                if "{{" in value:  # an expression: the package names it quotes
                    names.update(re.findall(rf"'({PACKAGE})'", value))
                else:
                    names.add(value)
    return names


def test_the_parsers_see_what_they_must():
    packages = stack_packages()
    assert {"postgresql-15", "redis-server", "nginx", "haproxy", "python3-venv", "acl"} <= packages, packages
    names = apt_names(role_defaults())
    # A list variable (provision_app_packages), a templated name, a quoted name in an expression.
    assert {"python3-venv", "postgresql-15", "pgbackrest", "openssh-server", "rabbitmq-server"} <= names, names


def test_every_package_of_the_stack_image_is_installed_by_a_role():
    missing = stack_packages() - apt_names(role_defaults())
    assert missing == set(), (
        f"images/stack/Dockerfile installs {sorted(missing)}, which no apt task of roles/*/tasks/ installs: "
        "hosts made from the image would hide the missing install"
    )
