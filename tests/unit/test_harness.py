"""The test services themselves: what later module tests rely on."""

import subprocess

import psycopg
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

import helpers


def test_postgres_connect_create_table(postgres_server):
    with postgres_server.connect() as conn:
        conn.execute("CREATE TABLE harness_check (id serial PRIMARY KEY, note text NOT NULL)")
        conn.execute("INSERT INTO harness_check (note) VALUES ('a'), ('b')")
        assert conn.execute("SELECT count(*) FROM harness_check").fetchone() == (2,)
        assert conn.info.server_version >= 150000
        assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
        assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone() == (True,)
        conn.execute("DROP TABLE harness_check")


def test_postgres_requires_password(postgres_server):
    wrong = postgres_server.dsn(password="not-the-password")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(wrong)
    assert postgres_server.password not in repr(postgres_server)


def test_postgres_unix_socket(postgres_server):
    with psycopg.connect(postgres_server.dsn(host=str(postgres_server.socket_dir))) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_postgres_env_for_subprocesses(postgres_server):
    result = subprocess.run(
        [postgres_server.bin("psql"), "-XAtc", "SELECT current_user || ' ' || current_database()"],
        env=helpers.minimal_env(**postgres_server.env()),
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    assert result.stdout.strip() == f"{postgres_server.user} postgres"


def test_postgres_database_and_role_helpers(postgres_server):
    postgres_server.create_role("harness_app", "app-secret")
    postgres_server.create_database("harness_db", owner="harness_app")
    try:
        with psycopg.connect(postgres_server.dsn("harness_db", user="harness_app", password="app-secret")) as conn:
            conn.execute("CREATE TABLE owned (id int)")
            assert conn.execute("SELECT current_user").fetchone() == ("harness_app",)
    finally:
        postgres_server.drop_database("harness_db")
        postgres_server.execute("DROP ROLE harness_app")
    assert postgres_server.execute("SELECT 1 FROM pg_database WHERE datname = 'harness_db'") == []


def test_redis_set_get(redis_server):
    client = redis_server.client()
    try:
        client.set("harness:key", "value", ex=60)
        assert client.get("harness:key") == b"value"
        assert redis.Redis.from_url(redis_server.url).ping() is True
    finally:
        client.delete("harness:key")
        client.close()


def test_redis_requires_password(redis_server):
    # redis-py 6+ retries failed commands three times with backoff by default (about 4 s here).
    anonymous = redis.Redis(
        host=redis_server.host, port=redis_server.port, socket_timeout=5, retry=Retry(NoBackoff(), 0)
    )
    with pytest.raises((redis.AuthenticationError, redis.ResponseError), match="(?i)auth"):
        anonymous.get("anything")
    anonymous.close()


def test_redis_has_no_persistence(redis_server):
    client = redis_server.client()
    try:
        assert client.config_get("save") == {"save": ""}
        assert client.config_get("appendonly") == {"appendonly": "no"}
        assert client.config_get("bind") == {"bind": "127.0.0.1"}
    finally:
        client.close()


def test_missing_binaries_are_reported(monkeypatch, tmp_path):
    monkeypatch.setenv("OPSBOOK_PG_BINDIR", str(tmp_path))
    with pytest.raises(helpers.HarnessError, match="initdb, pg_ctl, postgres.*OPSBOOK_PG_BINDIR"):
        helpers.find_pg_bindir()
    monkeypatch.setenv("OPSBOOK_REDIS_SERVER", str(tmp_path / "redis-server"))
    with pytest.raises(helpers.HarnessError, match="redis-server not found"):
        helpers.find_redis_server()
