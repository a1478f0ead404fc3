# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL's client programs inside a container: the database as a service of a compose project.

pg_backup_dump and pg_dump_verify take a container (option ``container``): pg_dump, pg_restore
and psql then run as ``docker exec -i --user postgres <container> <tool> ...``, the archive
streamed over the exec's stdout (a dump) or stdin (a read or a restore) to or from the host's
file. The container's own tools match its server; the host needs neither the client tools nor
psycopg. The libpq variables go to the docker CLI's environment and are passed on by name
(``--env PGPASSWORD``), so a password is never in an argv, the host's or the container's.

The docker CLI (not the Docker API through community.docker) because a module call cannot stream
an exec's output into a file with community.docker's modules, and the dump must be read while it
is written. Finding the container (its compose labels) is the roles' business, with
community.docker.docker_host_info.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import secrets
import shutil
import subprocess
import tempfile
import threading

# The libpq variables the tools read: passed to the exec by name, their values in the CLI's environment.
FORWARDED = (
    "PGHOST",
    "PGPORT",
    "PGUSER",
    "PGDATABASE",
    "PGPASSWORD",
    "PGCONNECT_TIMEOUT",
    "PGAPPNAME",
    "PGCLIENTENCODING",
    "PGOPTIONS",
    "LC_ALL",
)

# The operating-system user the tools run as in the container: peer authentication on the local
# socket, as `become_user: postgres` on a host. Both Debian's packages and the postgres image have it.
CONTAINER_USER = "postgres"


class ContainerError(Exception):
    """A docker exec that could not run, or a psql session that ended."""


def docker_cli() -> str | None:
    """The docker CLI: on the PATH, else Debian's /usr/bin/docker; None when absent."""
    found = shutil.which("docker")
    if found:
        return found
    return "/usr/bin/docker" if os.access("/usr/bin/docker", os.X_OK) else None


def tool(name: str, bin_dir: str | None) -> str:
    """The tool's name inside the container: in bin_dir when given, else found on the container's PATH."""
    return os.path.join(bin_dir, name) if bin_dir else name


def exec_argv(docker: str, container: str, argv: list, env: dict | None = None, stdin: bool = True) -> list:
    """docker exec of argv in the container as postgres; the variables of env among FORWARDED
    are passed by name (their values must be in the docker CLI's environment)."""
    out = [docker, "exec"]
    if stdin:
        out.append("--interactive")
    out += ["--user", CONTAINER_USER]
    for name in FORWARDED:
        if env and name in env:
            out += ["--env", name]
    return [*out, container, *argv]


class PsqlSession:
    """One psql in the container on a pipe, driven statement by statement, as a DB-API cursor is:
    execute(sql), then fetchone() or fetchall() (tuples of strings; convert the numbers). The
    transaction a session opens stays open between calls: pg_backup_dump exports its snapshot and
    counts inside it while pg_dump, another exec, dumps it.

    Each statement is followed by an echo of a random marker, so the answer ends where the marker
    is; psql runs with ON_ERROR_STOP, so an error ends the session and its message is raised."""

    def __init__(self, docker: str, container: str, database: str, env: dict, bin_dir: str | None = None) -> None:
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 closed by close()
        argv = [tool("psql", bin_dir), "-X", "-q", "-A", "-t", "-F", "\x1f", "-v", "ON_ERROR_STOP=1", "-d", database]
        # Arguments built here, no shell; the environment holds the libpq variables (FORWARDED).
        self._proc = subprocess.Popen(  # noqa: S603
            exec_argv(docker, container, argv, env),
            env={**os.environ, **env},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
        )
        self._rows: list = []

    def execute(self, sql: str) -> None:
        marker = "__opsbook_" + secrets.token_hex(8) + "__"
        try:
            self._proc.stdin.write(f"{sql.rstrip().rstrip(';')};\n\\echo {marker}\n".encode())
            self._proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise ContainerError(self._ended()) from None
        rows = []
        while True:
            line = self._proc.stdout.readline()
            if not line:
                raise ContainerError(self._ended())
            text = line.decode("utf-8", "replace").rstrip("\n")
            if text == marker:
                break
            rows.append(tuple(text.split("\x1f")))
        self._rows = rows

    def fetchone(self) -> tuple | None:
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list:
        return list(self._rows)

    def _ended(self) -> str:
        try:
            rc = self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            rc = None
        self._stderr.seek(0)
        message = self._stderr.read().decode("utf-8", "replace").strip()
        return f"psql in the container ended (exit status {rc}): {message or 'no message'}"

    def close(self) -> None:
        if self._proc.poll() is None:
            try:
                self._proc.stdin.write(b"\\q\n")
                self._proc.stdin.close()
            except (BrokenPipeError, OSError):
                pass
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc.stdout.close()
        self._stderr.close()


def run_with_stdin(argv: list, update: dict, path: str, gunzip: bool) -> tuple:
    """argv with the file at path on its stdin (gunzip: decompressed by a thread on the way), the
    variables of update added to this process's environment; (rc, stdout, stderr)."""
    env = {**os.environ, **update}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        if gunzip:
            # Arguments built by this module, never a shell string.
            proc = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=out, stderr=err)  # noqa: S603
            feeder = threading.Thread(target=_feed, args=(path, proc.stdin), daemon=True)
            feeder.start()
            rc = proc.wait()
            feeder.join(timeout=10)
        else:
            with open(path, "rb") as src:
                rc = subprocess.run(argv, env=env, stdin=src, stdout=out, stderr=err, check=False).returncode  # noqa: S603
        out.seek(0)
        err.seek(0)
        return rc, out.read().decode("utf-8", "replace"), err.read().decode("utf-8", "replace")


def _feed(path: str, pipe) -> None:
    """The decompressed file into pipe; a reader that stopped ends it (its exit status says why)."""
    try:
        with gzip.open(path, "rb") as src:
            shutil.copyfileobj(src, pipe, 1 << 20)
    except (OSError, EOFError):
        pass
    finally:
        with contextlib.suppress(OSError):
            pipe.close()
