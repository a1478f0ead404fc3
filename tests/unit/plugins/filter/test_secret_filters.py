"""redis_url, systemd_env_quote and redis_conf_quote on hostile values (the end-to-end proof with
systemd, Redis and clients is tests/unit/test_secrets_escaping.py)."""

import subprocess
from urllib.parse import unquote

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.opsbook.webstack.plugins.filter.redis_conf_quote import redis_conf_quote
from ansible_collections.opsbook.webstack.plugins.filter.redis_url import redis_url
from ansible_collections.opsbook.webstack.plugins.filter.systemd_env_quote import systemd_env_quote

PRINTABLE = "".join(chr(c) for c in range(0x20, 0x7F))


def test_redis_url_encodes_every_reserved_character():
    url = redis_url("a/b:c@d%e#f?g", "redis1", 6379, 0)
    assert url == "redis://:a%2Fb%3Ac%40d%25e%23f%3Fg@redis1:6379/0"
    encoded = redis_url(PRINTABLE + "\n", "redis1", "6380", "2")
    credentials = encoded[len("redis://:") : encoded.rindex("@")]
    assert not set(credentials) & set("/:@?#[] \"'\\\n")
    assert unquote(credentials) == PRINTABLE + "\n"
    assert encoded.endswith("@redis1:6380/2")


def test_redis_url_user_ipv6_and_no_password():
    assert redis_url("p w", "::1", 6379, 1, user="app/x") == "redis://app%2Fx:p%20w@[::1]:6379/1"
    assert redis_url("", "redis1") == "redis://redis1:6379/0"
    with pytest.raises(AnsibleFilterError, match="not a host"):
        redis_url("x", "evil@host")
    with pytest.raises(AnsibleFilterError, match="scheme"):
        redis_url("x", "redis1", scheme="http")


def test_systemd_env_quote_escapes_what_systemd_unescapes():
    assert systemd_env_quote('a"b\\c$d`e') == '"a\\"b\\\\c\\$d\\`e"'
    assert systemd_env_quote(" x \n y ") == '" x \n y "'
    assert systemd_env_quote(5432) == '"5432"'
    assert systemd_env_quote("v", name="EXTRA_1") == 'EXTRA_1="v"'


@pytest.mark.parametrize("name", ["1X", "A-B", "A B", "X\nY", "A=B", ""])
def test_systemd_env_quote_refuses_a_bad_name(name):
    with pytest.raises(AnsibleFilterError, match="not an environment variable name"):
        systemd_env_quote("v", name=name)


def test_systemd_env_quote_refuses_nul():
    with pytest.raises(AnsibleFilterError, match="NUL"):
        systemd_env_quote("a\0b", name="X")


def test_redis_conf_quote():
    assert redis_conf_quote('a b"c\\d') == '"a b\\"c\\\\d"'
    assert redis_conf_quote("x\ny\té") == '"x\\x0ay\\x09\\xc3\\xa9"'
    assert "\n" not in redis_conf_quote(PRINTABLE + "\n")


@pytest.mark.parametrize("value", [" " + PRINTABLE + " ", "a\nINJECTED=yes\n" + PRINTABLE])
def test_a_shell_sourcing_the_env_file_reads_the_same_value(tmp_path, value):
    """bench/deploy/baseline.sh sources the env file with `set -a; . env`: same value there."""
    env = tmp_path / "env"
    env.write_text(systemd_env_quote(value, name="SECRET") + "\n")
    out = subprocess.run(
        ["bash", "-c", 'set -a; . "$1"; set +a; printf %s "$SECRET"; printf %s "${INJECTED-}"', "sh", str(env)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out == value
