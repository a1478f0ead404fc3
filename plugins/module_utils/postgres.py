# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the PostgreSQL modules (pg_dump_verify, pg_backup_dump) share: the connection options, the
libpq environment built from them, identifier and literal quoting, pg_restore's failure words and
finding the client tools.

The options are documented once, in plugins/doc_fragments/postgres.py. The password reaches the
tools through the environment (PGPASSWORD) or a 0600 passfile (PGPASSFILE), never through argv.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import tempfile

# pg_restore messages that mean data is missing or unreadable, even when it exits 0.
PG_RESTORE_FAILURES = re.compile(
    r"no data will be available|could not find block id|unexpected end of file|end of file|could not read|"
    r"could not uncompress|could not open input file|corrupt|error:|fatal:",
    re.IGNORECASE,
)

# Variables that would send the tools to another server, database or password than the options say.
_REDIRECTING = ("PGDATABASE", "PGSERVICE", "PGSERVICEFILE")


def postgres_common_argument_spec(login_user_default: str = "postgres") -> dict:
    """The connection options of every module that connects (doc fragment opsbook.webstack.postgres).

    login_user_default: pg_backup_dump connects as the operating-system user by default (""), as
    pg_dump does; its documentation says so."""
    return dict(
        login_host=dict(type="str", default="", aliases=["host"]),
        login_port=dict(type="int", default=5432, aliases=["port"]),
        login_user=dict(type="str", default=login_user_default, aliases=["login"]),
        login_password=dict(type="str", default="", no_log=True),
        login_unix_socket=dict(type="str", default=""),
        pg_bin_dir=dict(type="path", aliases=["bin_dir"]),
        container=dict(type="str", default=""),
    )


def quote_ident(name: str) -> str:
    """A PostgreSQL identifier, double-quoted (quote_ident in SQL)."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """A PostgreSQL string literal, single-quoted (standard_conforming_strings, the default since 9.1)."""
    return "'" + value.replace("'", "''") + "'"


def alarming(stderr: str) -> list:
    """The lines of pg_restore's messages that mean data is missing or unreadable."""
    return [line for line in stderr.splitlines() if PG_RESTORE_FAILURES.search(line)]


def server_host(params: dict) -> str:
    """login_host, else login_unix_socket (a directory), else "" for libpq's default socket."""
    return params["login_host"] or params["login_unix_socket"]


def libpq_env(params: dict, database: str | None = None, passfile: str | None = None) -> dict:
    """PGHOST, PGPORT, PGUSER (PGDATABASE) from the options, and the password: PGPASSFILE when a
    passfile is given, else PGPASSWORD. Unset options are left to libpq's defaults."""
    env = {"PGPORT": str(params["login_port"])}
    if server_host(params):
        env["PGHOST"] = server_host(params)
    if params["login_user"]:
        env["PGUSER"] = params["login_user"]
    if database:
        env["PGDATABASE"] = database
    if passfile:
        env["PGPASSFILE"] = passfile
    elif params["login_password"]:
        env["PGPASSWORD"] = params["login_password"]
    return env


def clear_redirecting_env(passfile: bool) -> None:
    """Remove from this process's environment what would override the options (run_command adds
    the libpq variables to it): a service file, a default database, and a PGPASSWORD that would win
    over the passfile."""
    for name in _REDIRECTING + (("PGPASSWORD",) if passfile else ()):
        os.environ.pop(name, None)


def write_passfile(password: str, prefix: str) -> str | None:
    """A 0600 passfile holding password for any server (None without a password); the caller removes it."""
    if not password:
        return None
    escaped = password.replace("\\", "\\\\").replace(":", "\\:")
    fd, path = tempfile.mkstemp(prefix=prefix + "-", suffix=".pgpass")
    with os.fdopen(fd, "w") as fh:
        fh.write(f"*:*:*:*:{escaped}\n")
    os.chmod(path, 0o600)
    return path


def connect_params(params: dict, dbname: str) -> dict:
    """Keyword arguments of psycopg's (and psycopg2's) connect() from the options."""
    info = {"dbname": dbname, "port": str(params["login_port"])}
    for name, value in (("host", server_host(params)), ("user", params["login_user"])):
        if value:
            info[name] = value
    if params["login_password"]:
        info["password"] = params["login_password"]
    return info


def _version_key(path: str) -> tuple:
    numbers = re.findall(r"\d+", path)
    return tuple(int(n) for n in numbers) if numbers else (0,)


def find_tool(name: str, bin_dir: str | None) -> str | None:
    """The client tool name: in bin_dir when given (None when it is not there); else the newest of
    /usr/lib/postgresql/*/bin (Debian) and /usr/pgsql-*/bin (RHEL), then the PATH; None when absent."""
    if bin_dir:
        path = os.path.join(bin_dir, name)
        return path if os.path.isfile(path) and os.access(path, os.X_OK) else None
    candidates = glob.glob(f"/usr/lib/postgresql/*/bin/{name}") + glob.glob(f"/usr/pgsql-*/bin/{name}")
    candidates = [c for c in candidates if os.access(c, os.X_OK)]
    if candidates:
        return max(candidates, key=_version_key)
    return shutil.which(name)
