"""Real pg_dump archives for the pg_dump_verify tests, and a runner that calls the module as Ansible would.

build_dumps() creates, once per test session and PostgreSQL server, a database of application-like
rows (random-looking text, JSON with newlines and tabs, a quoted mixed-case table, large objects),
dumps it with the real pg_dump in every format, and a second database (the "wrong database" case).
The data is generated with a fixed seed, so the data blocks are the same in every run.

run_module() runs plugins/modules/pg_dump_verify.py in its own Python process with the arguments
on stdin (what AnsiballZ does on a managed host) and returns the parsed result and the raw output.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import helpers

COLLECTIONS = helpers.REPO_ROOT / "playbooks" / "collections"
MODULE = "ansible_collections.opsbook.webstack.plugins.modules.pg_dump_verify"
SOURCE_DB = "verify_shop"
OTHER_DB = "verify_other"

# Archive kinds: pg_dump arguments (None: written through a pipe, so the archive has no data offsets).
KINDS: dict[str, list[str] | None] = {
    "custom": ["-Fc"],
    "custom_z0": ["-Fc", "-Z0"],
    "custom_pipe": None,
    "directory": ["-Fd"],
    "directory_z0": ["-Fd", "-Z0"],
    "tar": ["-Ft"],
    "tar_no_blobs": ["-Ft", "--no-blobs"],
    "plain": ["-Fp"],
    "plain_gzip": ["-Fp", "-Z6"],
}
FORMAT_OF = {
    "custom": "custom",
    "custom_z0": "custom",
    "custom_pipe": "custom",
    "directory": "directory",
    "directory_z0": "directory",
    "tar": "tar",
    "tar_no_blobs": "tar",
    "plain": "plain",
    "plain_gzip": "plain_gzip",
}

SOURCE_SQL = """
SELECT setseed(0.42);
CREATE TABLE public.customers (id serial PRIMARY KEY, name text NOT NULL, email text NOT NULL);
INSERT INTO public.customers (name, email)
  SELECT md5(random()::text) || ' ' || md5(random()::text), md5(random()::text) || '@example.org'
  FROM generate_series(1, 3000);
CREATE TABLE public.orders (id serial PRIMARY KEY, customer_id int, doc jsonb, note text);
INSERT INTO public.orders (customer_id, doc, note)
  SELECT (random() * 3000)::int,
         jsonb_build_object('sku', md5(random()::text), 'qty', (random() * 9)::int,
                            'tags', jsonb_build_array(md5(random()::text), 'x"y\\z')),
         repeat(md5(random()::text), 4) || E'\\nsecond line\\twith tab and \\\\ backslash'
  FROM generate_series(1, 4000);
CREATE SCHEMA audit;
CREATE TABLE audit."Event Log" (id bigserial PRIMARY KEY, at timestamptz NOT NULL, msg text);
INSERT INTO audit."Event Log" (at, msg)
  SELECT timestamptz '2025-01-01 00:00:00+00' + g * interval '1 minute', md5(random()::text)
  FROM generate_series(1, 2000) AS g;
CREATE TABLE public.empty_table (id int);
SELECT lo_from_bytea(0, convert_to(repeat(md5(random()::text), 50), 'UTF8'));
SELECT lo_from_bytea(0, convert_to('second large object', 'UTF8'));
"""
SOURCE_COUNTS = {"public.customers": 3000, "public.orders": 4000, "audit.Event Log": 2000, "public.empty_table": 0}

OTHER_SQL = """
SELECT setseed(0.7);
CREATE TABLE public.invoices (id serial PRIMARY KEY, total numeric, memo text);
INSERT INTO public.invoices (total, memo) SELECT round((random() * 1000)::numeric, 2), md5(random()::text)
  FROM generate_series(1, 1500);
"""


@dataclass
class DumpSet:
    root: Path
    server: Any = field(repr=False)
    files: dict[str, Path] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    other: Path | None = None
    created_plain: Path | None = None

    def copy(self, kind: str, dest: Path) -> Path:
        """A private copy of one archive, to damage."""
        src = self.files[kind]
        target = dest / src.name
        if src.is_dir():
            shutil.copytree(src, target)
        else:
            shutil.copyfile(src, target)
        return target

    def manifest(self, kind: str, dest: Path, **override: Any) -> Path:
        """A manifest as the backup role writes it: sha256, exact row counts, format, database, size."""
        import hashlib

        path = self.files[kind]
        if path.is_dir():
            listing = "".join(
                f"{hashlib.sha256((path / n).read_bytes()).hexdigest()}  {n}\n"
                for n in sorted(os.listdir(path), key=os.fsencode)
            )
            sha256 = hashlib.sha256(listing.encode()).hexdigest()
            size = sum((path / n).stat().st_size for n in os.listdir(path))
        else:
            sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
            size = path.stat().st_size
        data = {
            "id": f"test-{kind}",
            "format": FORMAT_OF[kind],
            "database": SOURCE_DB,
            "sha256": sha256,
            "size": size,
            "tables": dict(self.counts),
            **override,
        }
        target = dest / f"{kind}.manifest.json"
        target.write_text(json.dumps(data, indent=2))
        return target


_CACHE: dict[int, DumpSet] = {}


def _psql(server, sql: str, dbname: str) -> None:
    subprocess.run(
        [server.bin("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dbname],
        input=sql,
        env=helpers.minimal_env(**server.env(dbname)),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )


def build_dumps(server, root: Path) -> DumpSet:
    """Every archive kind of SOURCE_DB, made once per server (both test modules share them)."""
    if server.port in _CACHE:
        return _CACHE[server.port]
    root.mkdir(parents=True, exist_ok=True)
    server.create_database(SOURCE_DB)
    server.create_database(OTHER_DB)
    _psql(server, SOURCE_SQL, SOURCE_DB)
    _psql(server, OTHER_SQL, OTHER_DB)
    counts = {
        name: server.execute(f'SELECT count(*) FROM {schema}."{table}"', dbname=SOURCE_DB)[0][0]
        for name, (schema, table) in {k: k.split(".", 1) for k in SOURCE_COUNTS}.items()
    }
    assert counts == SOURCE_COUNTS, counts
    dumps = DumpSet(root=root, server=server, counts=counts)
    env = helpers.minimal_env(**server.env(SOURCE_DB))
    suffix = {"directory": "", "directory_z0": "", "tar": ".tar", "tar_no_blobs": ".tar", "plain": ".sql"}
    suffix["plain_gzip"] = ".sql.gz"
    jobs = []
    for kind, argv in KINDS.items():
        target = root / f"{kind}{suffix.get(kind, '.dump')}"
        dumps.files[kind] = target
        if argv is None:
            with open(target, "wb") as out:
                # Through a pipe pg_dump cannot seek back, so the TOC keeps no data offsets.
                dump = subprocess.Popen([server.bin("pg_dump"), "-Fc"], stdout=subprocess.PIPE, env=env)
                cat = subprocess.Popen(["cat"], stdin=dump.stdout, stdout=out)
                dump.stdout.close()
                jobs.append(dump)
                jobs.append(cat)
            continue
        jobs.append(subprocess.Popen([server.bin("pg_dump"), *argv, "-f", str(target)], env=env))
    other = root / "other.dump"
    jobs.append(
        subprocess.Popen(
            [server.bin("pg_dump"), "-Fc", "-f", str(other)], env=helpers.minimal_env(**server.env(OTHER_DB))
        )
    )
    created = root / "created.sql"
    jobs.append(subprocess.Popen([server.bin("pg_dump"), "-Fp", "--create", "-f", str(created)], env=env))
    for job in jobs:
        assert job.wait(timeout=120) == 0, job.args
    dumps.other = other
    dumps.created_plain = created
    _CACHE[server.port] = dumps
    return dumps


# --------------------------------------------------------------------------- damage


def truncate(path: Path, size: int) -> Path:
    with open(path, "r+b") as fh:
        fh.truncate(size)
    return path


def flip_byte(path: Path, offset: int) -> Path:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


def half_then_gzip(plain: Path, dest: Path) -> Path:
    """Plain SQL cut in half, then compressed: a valid gzip file (gzip -t passes) of an incomplete dump."""
    data = plain.read_bytes()
    dest.write_bytes(gzip.compress(data[: len(data) // 2]))
    return dest


def pg_restore(server, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [server.bin("pg_restore"), *argv],
        env=helpers.minimal_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# --------------------------------------------------------------------------- the module


@dataclass
class ModuleRun:
    rc: int
    result: dict
    stdout: str
    stderr: str

    @property
    def failed(self) -> bool:
        return bool(self.result.get("failed"))

    @property
    def msg(self) -> str:
        return str(self.result.get("msg", ""))

    def __getitem__(self, key: str) -> Any:
        return self.result[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.result.get(key, default)


def run_module(args: dict, *, check_mode: bool = False, timeout: float = 120) -> ModuleRun:
    """The module in its own process, arguments on stdin, as AnsiballZ runs it on a host."""
    payload = {"ANSIBLE_MODULE_ARGS": {**args, "_ansible_check_mode": check_mode}}
    env = helpers.minimal_env(PYTHONPATH=str(COLLECTIONS))
    proc = subprocess.run(
        [sys.executable, "-m", MODULE],
        input=json.dumps(payload),
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    try:
        result = json.loads(proc.stdout)
    except ValueError:
        raise AssertionError(
            f"the module printed no JSON (rc {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        ) from None
    return ModuleRun(proc.returncode, result, proc.stdout, proc.stderr)


def login_args(server, **extra: Any) -> dict:
    return {
        "login_host": server.host,
        "login_port": server.port,
        "login_user": server.user,
        "login_password": server.password,
        "pg_bin_dir": str(server.bin_dir),
        **extra,
    }


def scratch_databases(server) -> list[str]:
    return [row[0] for row in server.execute("SELECT datname FROM pg_database WHERE datname LIKE 'pg_dump_verify%'")]
