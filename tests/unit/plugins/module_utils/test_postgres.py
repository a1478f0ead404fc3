"""module_utils/postgres.py and pg_scratch.py against the test PostgreSQL: the shared connection options
match their doc fragment, the password reaches psql through the environment or a passfile (never argv),
quoting survives hostile names, and the scratch restore creates, loads, counts and drops a database."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest
import yaml
from ansible_collections.opsbook.webstack.plugins.doc_fragments.postgres import ModuleDocFragment
from ansible_collections.opsbook.webstack.plugins.module_utils import postgres as pg
from ansible_collections.opsbook.webstack.plugins.module_utils.pg_archive import VerifyError, open_archive
from ansible_collections.opsbook.webstack.plugins.module_utils.pg_scratch import ScratchRestore, create_sql

ROOT = Path(__file__).resolve().parents[4]
# A role name and password with every character a passfile or a SQL literal must escape.
ODD_ROLE = 'opsbook "odd" role'
ODD_PASSWORD = "p:w\\d'\"$ x"


def params(server, **extra) -> dict:
    spec = pg.postgres_common_argument_spec()
    values = {name: option.get("default") for name, option in spec.items()}
    values.update(login_host=server.host, login_port=server.port, login_user=server.user)
    values.update(login_password=server.password, pg_bin_dir=str(server.bin_dir))
    values.update(extra)
    return values


def run_factory(env_seen: list):
    def run(argv: list, what: str, env: dict | None = None) -> tuple:
        env_seen.append((argv, env))
        proc = subprocess.run(argv, env={**os.environ, **(env or {})}, capture_output=True, text=True, check=False)
        return proc.returncode, proc.stdout, proc.stderr

    return run


def test_the_doc_fragment_documents_the_common_spec_exactly():
    documented = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)["options"]
    spec = pg.postgres_common_argument_spec()
    assert set(documented) == set(spec) == {
        "login_host", "login_port", "login_user", "login_password", "login_unix_socket", "pg_bin_dir",
        "container",
    }  # fmt: skip
    for name, option in spec.items():
        assert documented[name]["type"] == option["type"], name
        assert documented[name].get("default") == option.get("default"), name
        assert documented[name].get("aliases", []) == option.get("aliases", []), name
    assert spec["login_password"]["no_log"] is True
    assert pg.postgres_common_argument_spec(login_user_default="")["login_user"]["default"] == ""


@pytest.mark.parametrize("module", ["pg_dump_verify", "pg_backup_dump"])
def test_every_module_that_connects_uses_the_fragment_and_the_spec(module):
    source = (ROOT / "plugins" / "modules" / f"{module}.py").read_text()
    assert "opsbook.webstack.postgres" in source and "postgres_common_argument_spec(" in source
    assert "login_password=dict(" not in source and '"login_password": {' not in source


def test_libpq_env_puts_the_password_in_a_passfile_or_pgpassword_never_both():
    values = {"login_host": "", "login_unix_socket": "/run/pg", "login_port": 5433, "login_user": "u",
              "login_password": "s3cret"}  # fmt: skip
    with_file = pg.libpq_env(values, database="db", passfile="/tmp/x.pgpass")
    assert with_file == {"PGHOST": "/run/pg", "PGPORT": "5433", "PGUSER": "u", "PGDATABASE": "db",
                         "PGPASSFILE": "/tmp/x.pgpass"}  # fmt: skip
    assert pg.libpq_env(values)["PGPASSWORD"] == "s3cret" and "PGPASSFILE" not in pg.libpq_env(values)
    assert pg.connect_params(values, "db") == {"dbname": "db", "port": "5433", "host": "/run/pg", "user": "u",
                                               "password": "s3cret"}  # fmt: skip
    assert "PGUSER" not in pg.libpq_env({**values, "login_user": ""})


def test_passfile_and_quoting_reach_a_real_server(postgres_server, tmp_path):
    server = postgres_server
    role = pg.quote_ident(ODD_ROLE)
    server.execute(f"DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN PASSWORD {pg.quote_literal(ODD_PASSWORD)}")
    passfile = pg.write_passfile(ODD_PASSWORD, "test_postgres")
    try:
        assert stat.S_IMODE(os.stat(passfile).st_mode) == 0o600
        values = params(server, login_user=ODD_ROLE, login_password=ODD_PASSWORD)
        env = {**os.environ, **pg.libpq_env(values, database=server.dbname, passfile=passfile)}
        env.pop("PGPASSWORD", None)
        argv = [
            pg.find_tool("psql", str(server.bin_dir)),
            "-X",
            "-A",
            "-t",
            "--no-password",
            "-c",
            "SELECT current_user",
        ]
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == ODD_ROLE
        assert ODD_PASSWORD not in " ".join(argv)
    finally:
        os.unlink(passfile)
        server.execute(f"DROP ROLE IF EXISTS {role}")
    assert pg.write_passfile("", "test_postgres") is None
    assert pg.find_tool("psql", str(tmp_path)) is None  # not in the given directory: no fallback


def test_create_sql_quotes_every_value():
    sql = create_sql('new"db', {"owner": 'o"wner', "encoding": "UTF8", "lc_collate": "C'x", "template": ""})
    assert sql == """CREATE DATABASE "new""db" ENCODING 'UTF8' LC_COLLATE 'C''x' OWNER "o""wner\""""


def test_scratch_restore_creates_loads_counts_and_drops(postgres_server, tmp_path):
    server = postgres_server
    source = "test_postgres_source"
    server.create_database(source)
    server.execute(
        'CREATE SCHEMA "we""ird"; CREATE TABLE "we""ird"."ta ble" (n int);'
        'INSERT INTO "we""ird"."ta ble" SELECT generate_series(1, 123); CREATE TABLE public.empty (n int);',
        dbname=source,
    )
    dump = tmp_path / "source.dump"
    env = {**os.environ, "PGPASSWORD": server.password}
    subprocess.run([server.bin("pg_dump"), "-Fc", "-f", str(dump), server.dsn(source)], env=env, check=True)
    archive = open_archive(str(dump))
    archive.header()
    archive.structure()

    seen: list = []
    values = params(server)
    tools = ScratchRestore(run_factory(seen), server.bin("psql"), pg.libpq_env(values), "postgres")
    scratch = "test_postgres_scratch"
    tools.drop(scratch)
    tools.create(scratch, {"template": "template0", "encoding": "UTF8"})
    try:
        tools.load_archive(server.bin("pg_restore"), scratch, str(dump), jobs=2, no_owner=True)
        assert tools.count_rows(scratch, archive.members, jobs=2) == {'we"ird.ta ble': 123, "public.empty": 0}
    finally:
        tools.drop(scratch)
    assert not server.execute(f"SELECT 1 FROM pg_database WHERE datname = '{scratch}'")
    assert all(server.password not in " ".join(argv) for argv, _env in seen)
    with pytest.raises(VerifyError, match="pg_restore into scratch database .* failed"):
        tools.load_archive(server.bin("pg_restore"), "test_postgres_missing", str(dump), jobs=1, no_owner=True)
