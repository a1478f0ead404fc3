"""broker_url and broker_spec: the one definition of the Celery broker URL (issue 22 item 4, issue 25).

The URL reaching a real RabbitMQ with such a password is tests/unit/plugins/modules/test_celery_rabbitmq.py;
here: the quoting, kombu's reading of it, the Redis default and the refusals.
"""

import subprocess
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.opsbook.webstack.plugins.filter.broker_spec import FilterModule as SpecFilters
from ansible_collections.opsbook.webstack.plugins.filter.broker_url import broker_spec, broker_url
from ansible_collections.opsbook.webstack.plugins.filter.redis_url import redis_url
from kombu.utils.url import url_to_parts

ROOT = Path(__file__).resolve().parents[4]
ODD = ["p@ss", "a/b", "100%", "x:y", "with space", "%41", "#?&=+;,", "'\"\\", "ünïcødé", "@/%: "]
REDIS = ("redis-secret", "redis1", 6379, 0)


@pytest.mark.parametrize("password", ODD)
def test_rabbitmq_password_survives_kombu(password):
    url = broker_url({"kind": "rabbitmq", "host": "rabbit1", "user": "app user", "password": password, "vhost": "a/b"})
    encoded_password = url[len("amqp://app%20user:") : url.rindex("@")]
    assert not set(encoded_password) & set("@/: #?&'\"\\")
    parts = url_to_parts(url)
    assert (parts.scheme, parts.hostname, parts.port) == ("amqp", "rabbit1", 5672)
    assert parts.username == "app user" and parts.password == password and parts.path == "a/b"


def test_rabbitmq_defaults_tls_and_ipv6():
    assert (
        broker_url({"kind": "rabbitmq", "host": "rabbit1", "user": "u", "password": "p"})
        == "amqp://u:p@rabbit1:5672/%2F"
    )
    assert url_to_parts("amqp://u:p@rabbit1:5672/%2F").path == "/"
    assert broker_url({"kind": "rabbitmq", "host": "::1", "user": "u", "password": "p", "tls": True, "vhost": "v"}) == (
        "amqps://u:p@[::1]:5671/v"
    )
    spec = broker_spec({"kind": "rabbitmq", "host": "r", "user": "u", "password": "p", "port": "5673"}, *REDIS)
    assert spec == {
        "kind": "rabbitmq",
        "host": "r",
        "port": 5673,
        "vhost": "/",
        "user": "u",
        "password": "p",
        "tls": False,
    }
    assert SpecFilters().filters()["broker_spec"] is broker_spec


@pytest.mark.parametrize("empty", [{}, None, "", {"kind": "redis"}])
def test_redis_default_is_the_url_roles_had(empty):
    """An inventory without app_broker gets exactly the URL the redis_url filter built before."""
    assert broker_url(empty, *REDIS) == redis_url(*REDIS) == "redis://:redis-secret@redis1:6379/0"
    assert broker_spec(empty, *REDIS)["kind"] == "redis"


def test_redis_keys_override_app_redis():
    url = broker_url({"kind": "redis", "host": "cache2", "db": 3, "password": "a/b@c"}, *REDIS)
    assert url == "redis://:a%2Fb%40c@cache2:6379/3"
    assert broker_url({"tls": True}, *REDIS) == "rediss://:redis-secret@redis1:6379/0?ssl_cert_reqs=required"


@pytest.mark.parametrize(
    ("broker", "message"),
    [
        ({"kind": "rabbitmq", "host": "r", "password": "p"}, "app_broker: kind rabbitmq needs user"),
        ({"kind": "rabbitmq", "user": "u", "password": ""}, "app_broker: kind rabbitmq needs host, password"),
        ({"kind": "sqs"}, "app_broker: kind must be one of redis, rabbitmq, got 'sqs'"),
        ({"kind": "rabbitmq", "host": "r", "user": "u", "password": "p", "db": 1}, "unknown key.*db.*accepted"),
        ({"kind": "rabbitmq", "host": "r", "user": "u", "password": "p", "port": "x"}, "port must be an integer"),
        ({"kind": "rabbitmq", "host": "r@evil", "user": "u", "password": "p"}, "not a host name"),
        ({"tls": "yes"}, "tls must be true or false"),
        ("amqp://u:p@h//", "app_broker: must be a dictionary"),
    ],
)
def test_incomplete_description_is_refused_naming_the_variable(broker, message):
    with pytest.raises(AnsibleFilterError, match=message):
        broker_url(broker, *REDIS)


def test_refusal_never_shows_the_password():
    with pytest.raises(AnsibleFilterError) as info:
        broker_url({"kind": "rabbitmq", "host": "r@evil", "user": "u", "password": "hunter2"}, *REDIS)
    assert "hunter2" not in str(info.value)


def test_roles_build_the_url_only_through_the_filter():
    """Every role's broker URL is one call of broker_url; no role assembles one by hand."""
    found = subprocess.run(
        ["grep", "-rnE", "redis://|amqp://|redis_url\\(", "roles", "--include=*.yml", "--include=*.j2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.splitlines()
    # RQ is Redis whatever the Celery broker is: its URL (REDIS_URL, RQ_REDIS_URL, the celery role's
    # RQ actions) stays redis_url.
    allowed = ("roles/deploy/templates/env.j2", "roles/celery/vars/main.yml", "roles/validate/meta/argument_specs.yml")
    assert [line for line in found if not line.startswith(allowed)] == []
    users = subprocess.run(
        ["grep", "-rln", "opsbook.webstack.broker_url(", "roles"], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout.split()
    # The environment file writes the deploy role's __deploy_broker_url ('' for an app without a broker).
    assert sorted(users) == sorted(
        [f"roles/{role}/vars/main.yml" for role in ("blue_green", "celery", "deploy", "maintenance")]
    ), users


# ------------------------------------------------------------------ app_redis false (issue 25)


@pytest.mark.parametrize("empty", [{}, None, ""])
@pytest.mark.parametrize("off", [False, "false", "no"])
def test_without_redis_an_empty_app_broker_is_no_broker(empty, off):
    """An app that uses no Redis and sets no app_broker has no Celery: no URL, kind none, no host to reach."""
    assert broker_url(empty, None, None, 6379, 0, off) == ""
    spec = broker_spec(empty, None, None, 6379, 0, off)
    assert spec["kind"] == "none" and spec["host"] == "" and spec["password"] == ""


def test_without_redis_rabbitmq_is_the_broker_as_before():
    rabbit = {"kind": "rabbitmq", "host": "mq1", "vhost": "ca", "user": "ca", "password": "p/w"}
    assert broker_url(rabbit, None, None, 6379, 0, False) == broker_url(rabbit, *REDIS) == "amqp://ca:p%2Fw@mq1:5672/ca"


@pytest.mark.parametrize("broker", [{"kind": "redis", "host": "cache2"}, {"host": "cache2", "password": "hunter2"}])
def test_without_redis_a_redis_broker_is_refused_naming_app_redis(broker):
    with pytest.raises(AnsibleFilterError, match="app_broker: kind is redis .*but app_redis is false") as info:
        broker_url(broker, None, None, 6379, 0, False)
    assert "hunter2" not in str(info.value)


def test_redis_true_keeps_the_default():
    assert broker_url({}, *REDIS, True) == broker_url({}, *REDIS) == "redis://:redis-secret@redis1:6379/0"
