"""Real services for the unit tests: PostgreSQL, Redis, and processes of the sample application.

Nothing here depends on pytest, so benchmarks and scripts can start the same
servers. tests/conftest.py wraps these in session fixtures.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
WEBAPP_DIR = REPO_ROOT / "examples" / "webapp"
WEBAPP_REQUIREMENTS = WEBAPP_DIR / "src" / "requirements.txt"
# Shared with scripts/lib.sh: builds are cached across checkouts on the same machine.
CACHE_DIR = Path(os.environ.get("OPSBOOK_CACHE") or Path.home() / ".cache" / "opsbook")

# Which OS user runs PostgreSQL when the tests run as root (initdb refuses root).
PG_OS_USER_CANDIDATES = ("postgres", "opsbook-test")


class HarnessError(RuntimeError):
    """A test service could not be provided; the message says what is missing and what to do."""


# --------------------------------------------------------------------------- small tools


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (callers retry if someone takes it meanwhile)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return f"({path} does not exist)"


def minimal_env(**extra: str) -> dict[str, str]:
    """A clean environment for child processes: nothing from the test runner's venv or settings leaks in."""
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TZ": "UTC",
    }
    if "TMPDIR" in os.environ:
        env["TMPDIR"] = os.environ["TMPDIR"]
    env.update(extra)
    return env


def wait_until(predicate, timeout: float, interval: float = 0.1, what: str = "condition") -> Any:
    """Call predicate until it returns something truthy; raise TimeoutError naming what was awaited."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while True:
        try:
            result = predicate()
            if result:
                return result
        except Exception as exc:  # the predicate may fail until the thing is up
            last_exc = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_exc!r})" if last_exc else ""
            raise TimeoutError(f"gave up after {timeout:.0f}s waiting for {what}{detail}")
        time.sleep(interval)


@dataclass
class HttpResponse:
    status: int
    body: bytes
    headers: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


def http_request(method: str, url: str, payload: Any = None, timeout: float = 10.0) -> HttpResponse:
    """One HTTP request; 4xx/5xx are returned, not raised."""
    data = json.dumps(payload).encode() if payload is not None else None
    headers = {"Content-Type": "application/json"} if data is not None else {}
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return HttpResponse(response.status, response.read(), dict(response.headers))
    except urllib.error.HTTPError as exc:
        return HttpResponse(exc.code, exc.read(), dict(exc.headers))


# --------------------------------------------------------------------------- processes


class ManagedProcess:
    """A child process in its own session, with its output in a log file; stop() ends the whole group."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        name: str | None = None,
    ) -> None:
        self.argv = list(argv)
        self.log_path = Path(log_path)
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.name = name or Path(argv[0]).name
        self.proc: subprocess.Popen | None = None

    def start(self) -> ManagedProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"{self.name} was never started"
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self, lines: int = 40) -> str:
        return tail(self.log_path, lines)

    def check_alive(self) -> None:
        if not self.alive():
            code = self.proc.returncode if self.proc else None
            raise HarnessError(f"{self.name} exited (status {code}); log {self.log_path}:\n{self.log()}")

    def stop(self, timeout: float = 10.0, sig: int = signal.SIGTERM) -> int | None:
        """Signal the process group, wait, then SIGKILL whatever is left. Safe to call twice."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=timeout)
        # Children (gunicorn or celery workers) may outlive their parent: clear the group either way.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        return self.proc.returncode

    def __enter__(self) -> ManagedProcess:
        return self.start() if self.proc is None else self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def stop_processes(processes: Sequence[ManagedProcess], timeout: float = 10.0) -> None:
    """Signal every process first, then wait: shutdowns overlap instead of adding up."""
    for process in processes:
        if process.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        process.stop(timeout=timeout)


def wait_for_http(url: str, timeout: float = 30.0, process: ManagedProcess | None = None) -> HttpResponse:
    """Wait until url answers at all (any status); fail early with the log if the server died."""

    def probe() -> HttpResponse | None:
        if process is not None:
            process.check_alive()
        try:
            return http_request("GET", url, timeout=2)
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            return None

    try:
        return wait_until(probe, timeout, interval=0.1, what=f"{url} to answer")
    except TimeoutError as exc:
        log = f"\n{process.name} log:\n{process.log()}" if process else ""
        raise HarnessError(f"{exc}{log}") from None


def wait_for_log(process: ManagedProcess, pattern: str, timeout: float = 30.0) -> None:
    regex = re.compile(pattern)

    def seen() -> bool:
        process.check_alive()
        return bool(regex.search(process.log_path.read_text(errors="replace")))

    try:
        wait_until(seen, timeout, interval=0.1, what=f"{pattern!r} in {process.log_path}")
    except TimeoutError as exc:
        raise HarnessError(f"{exc}\n{process.name} log:\n{process.log()}") from None


# --------------------------------------------------------------------------- PostgreSQL


def find_pg_bindir() -> Path:
    """PostgreSQL server binaries: $OPSBOOK_PG_BINDIR, else `pg_config --bindir`, else /usr/lib/postgresql/15/bin."""
    candidates: list[Path] = []
    if os.environ.get("OPSBOOK_PG_BINDIR"):
        candidates.append(Path(os.environ["OPSBOOK_PG_BINDIR"]))
    else:
        pg_config = shutil.which("pg_config")
        if pg_config:
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=True, timeout=10)
                candidates.append(Path(out.stdout.strip()))
        candidates.append(Path("/usr/lib/postgresql/15/bin"))
    for bindir in candidates:
        if all((bindir / name).is_file() for name in ("initdb", "pg_ctl", "postgres")):
            return bindir
    raise HarnessError(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found in "
        + ", ".join(str(c) for c in candidates)
        + ". Install them (apt-get install postgresql-15) or set OPSBOOK_PG_BINDIR."
    )


def _pg_os_user() -> pwd.struct_passwd | None:
    """None when not root (run as ourselves); else an unprivileged account, created if needed."""
    if os.geteuid() != 0:
        return None
    for name in PG_OS_USER_CANDIDATES:
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    name = PG_OS_USER_CANDIDATES[-1]
    try:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
            check=True,
            capture_output=True,
            text=True,
        )
    except (subprocess.CalledProcessError, OSError) as exc:
        raise HarnessError(
            f"running as root, PostgreSQL needs an unprivileged OS user; none of {PG_OS_USER_CANDIDATES} "
            f"exists and creating {name!r} failed: {exc}"
        ) from exc
    return pwd.getpwnam(name)


@dataclass
class PostgresServer:
    """A throwaway PostgreSQL cluster: TCP on 127.0.0.1 with scram passwords, socket in its own directory."""

    host: str
    port: int
    user: str
    password: str = field(repr=False)
    dbname: str
    socket_dir: Path
    bin_dir: Path
    data_dir: Path
    log_path: Path
    base_dir: Path
    os_user: str | None = None

    def bin(self, name: str) -> str:
        return str(self.bin_dir / name)

    def dsn(self, dbname: str | None = None, **params: Any) -> str:
        """libpq conninfo ("host=... port=..."), accepted by psycopg.connect and psql."""
        values = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "dbname": dbname or self.dbname,
            "connect_timeout": 5,
            **params,
        }
        return " ".join(f"{key}={value}" for key, value in values.items())

    conninfo = dsn

    def url(self, dbname: str | None = None) -> str:
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{dbname or self.dbname}"

    def env(self, dbname: str | None = None) -> dict[str, str]:
        """libpq variables for subprocesses (psql, pg_dump): the password never goes on a command line."""
        return {
            "PGHOST": self.host,
            "PGPORT": str(self.port),
            "PGUSER": self.user,
            "PGPASSWORD": self.password,
            "PGDATABASE": dbname or self.dbname,
        }

    def connect(self, dbname: str | None = None, autocommit: bool = True, **kwargs: Any):
        import psycopg

        return psycopg.connect(self.dsn(dbname), autocommit=autocommit, **kwargs)

    def execute(self, sql: str, params: Sequence[Any] | None = None, dbname: str | None = None) -> list[tuple]:
        """Run one statement in its own autocommit connection; rows if it returned any."""
        with self.connect(dbname) as conn, conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else []

    def create_role(self, name: str, password: str, *, superuser: bool = False) -> None:
        from psycopg import sql

        with self.connect() as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN {} PASSWORD {}").format(
                    sql.Identifier(name),
                    sql.SQL("SUPERUSER" if superuser else "NOSUPERUSER"),
                    sql.Literal(password),
                )
            )

    def create_database(self, name: str, owner: str | None = None) -> None:
        """(Re)create database name, dropping an existing one first."""
        from psycopg import sql

        self.drop_database(name)
        with self.connect() as conn:
            statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
            if owner:
                statement += sql.SQL(" OWNER {}").format(sql.Identifier(owner))
            conn.execute(statement)

    def drop_database(self, name: str) -> None:
        from psycopg import sql

        with self.connect() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _run_as(argv: Sequence[str], os_user: pwd.struct_passwd | None, cwd: Path, timeout: float = 60):
    kwargs: dict[str, Any] = {}
    if os_user is not None:
        kwargs = {"user": os_user.pw_uid, "group": os_user.pw_gid, "extra_groups": []}
    return subprocess.run(
        list(argv),
        cwd=cwd,
        env=minimal_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **kwargs,
    )


def start_postgres(*, superuser: str = "opsbook", attempts: int = 3) -> PostgresServer:
    """initdb a new cluster in a temporary directory and start it on a free port."""
    bin_dir = find_pg_bindir()
    os_user = _pg_os_user()
    # Not under pytest's tmp_path: that is private to root and PostgreSQL runs as another user.
    base_dir = Path(tempfile.mkdtemp(prefix="opsbook-pg-"))
    data_dir, socket_dir, log_path = base_dir / "data", base_dir / "sock", base_dir / "postgresql.log"
    password = secrets.token_urlsafe(18)
    try:
        socket_dir.mkdir()
        pwfile = base_dir / "pwfile"
        pwfile.write_text(password + "\n")
        pwfile.chmod(0o600)
        if os_user is not None:
            for path in (base_dir, socket_dir, pwfile):
                os.chown(path, os_user.pw_uid, os_user.pw_gid)
        result = _run_as(
            [
                str(bin_dir / "initdb"),
                "--pgdata",
                str(data_dir),
                "--username",
                superuser,
                "--pwfile",
                str(pwfile),
                "--auth-host=scram-sha-256",
                "--auth-local=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
                "--no-instructions",
            ],
            os_user,
            base_dir,
        )
        pwfile.unlink()
        if result.returncode != 0:
            raise HarnessError(f"initdb failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        with open(data_dir / "postgresql.conf", "a") as conf:
            conf.write("\ninclude 'opsbook_test.conf'\n")
        for attempt in range(1, attempts + 1):
            port = free_port()
            settings = {
                "listen_addresses": "'127.0.0.1'",
                "port": str(port),
                "unix_socket_directories": f"'{socket_dir}'",
                "password_encryption": "'scram-sha-256'",
                # A test cluster trades durability for speed.
                "fsync": "off",
                "synchronous_commit": "off",
                "full_page_writes": "off",
                "max_connections": "100",
                "log_line_prefix": "'%m [%p] %q%u@%d '",
            }
            conf_path = data_dir / "opsbook_test.conf"
            conf_path.write_text("".join(f"{key} = {value}\n" for key, value in settings.items()))
            if os_user is not None:
                os.chown(conf_path, os_user.pw_uid, os_user.pw_gid)
            result = _run_as(
                [str(bin_dir / "pg_ctl"), "--pgdata", str(data_dir), "--log", str(log_path), "-w", "-t", "30", "start"],
                os_user,
                base_dir,
            )
            if result.returncode == 0:
                return PostgresServer(
                    host="127.0.0.1",
                    port=port,
                    user=superuser,
                    password=password,
                    dbname="postgres",
                    socket_dir=socket_dir,
                    bin_dir=bin_dir,
                    data_dir=data_dir,
                    log_path=log_path,
                    base_dir=base_dir,
                    os_user=os_user.pw_name if os_user else None,
                )
            if "already in use" not in tail(log_path, 20) or attempt == attempts:
                raise HarnessError(
                    f"pg_ctl start failed ({result.returncode}): {result.stdout}{result.stderr}\n"
                    f"log {log_path}:\n{tail(log_path)}"
                )
    except BaseException:
        shutil.rmtree(base_dir, ignore_errors=True)
        raise
    raise AssertionError("unreachable")


def stop_postgres(server: PostgresServer) -> None:
    """pg_ctl stop -m fast; SIGKILL the postmaster if that fails; remove the cluster."""
    os_user = pwd.getpwnam(server.os_user) if server.os_user else None
    try:
        if (server.data_dir / "postmaster.pid").exists():
            result = _run_as(
                [server.bin("pg_ctl"), "--pgdata", str(server.data_dir), "-m", "fast", "-w", "-t", "30", "stop"],
                os_user,
                server.base_dir,
            )
            if result.returncode != 0 and (server.data_dir / "postmaster.pid").exists():
                pid = int((server.data_dir / "postmaster.pid").read_text().split()[0])
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
    finally:
        shutil.rmtree(server.base_dir, ignore_errors=True)


@contextlib.contextmanager
def postgres() -> Iterator[PostgresServer]:
    server = start_postgres()
    try:
        yield server
    finally:
        stop_postgres(server)


# --------------------------------------------------------------------------- Redis


def find_redis_server() -> str:
    path = os.environ.get("OPSBOOK_REDIS_SERVER") or shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(path).is_file():
        raise HarnessError(
            f"redis-server not found ({path}). Install it (apt-get install redis-server) or set OPSBOOK_REDIS_SERVER."
        )
    return path


@dataclass
class RedisServer:
    """A throwaway redis-server on 127.0.0.1 with requirepass and no persistence."""

    host: str
    port: int
    password: str = field(repr=False)
    base_dir: Path
    log_path: Path
    process: ManagedProcess = field(repr=False)

    @property
    def url(self) -> str:
        return self.url_for(0)

    def url_for(self, db: int = 0) -> str:
        return f"redis://:{self.password}@{self.host}:{self.port}/{db}"

    def env(self, db: int = 0) -> dict[str, str]:
        """REDISCLI_AUTH keeps the password off redis-cli's command line."""
        return {"REDIS_URL": self.url_for(db), "REDISCLI_AUTH": self.password}

    def client(self, db: int = 0, **kwargs: Any):
        import redis

        return redis.Redis.from_url(self.url_for(db), socket_timeout=5, socket_connect_timeout=5, **kwargs)


def _redis_ping(host: str, port: int, password: str) -> bool:
    """AUTH + PING over a raw socket, so readiness needs no client library."""
    with socket.create_connection((host, port), timeout=1) as sock:
        sock.sendall(f"AUTH {password}\r\nPING\r\n".encode())
        data = b""
        while data.count(b"\r\n") < 2:
            chunk = sock.recv(256)
            if not chunk:
                break
            data += chunk
    return data.startswith(b"+OK\r\n+PONG")


def start_redis(*, attempts: int = 3) -> RedisServer:
    binary = find_redis_server()
    base_dir = Path(tempfile.mkdtemp(prefix="opsbook-redis-"))
    password = secrets.token_urlsafe(18)
    log_path = base_dir / "redis.log"
    try:
        for attempt in range(1, attempts + 1):
            port = free_port()
            conf = base_dir / "redis.conf"
            # The password goes in a 0600 file, not on the command line where ps shows it.
            conf.touch(mode=0o600)
            conf.write_text(
                "\n".join(
                    [
                        "bind 127.0.0.1",
                        f"port {port}",
                        f"requirepass {password}",
                        "protected-mode yes",
                        'save ""',
                        "appendonly no",
                        f"dir {base_dir}",
                        f"logfile {log_path}",
                        "daemonize no",
                        "",
                    ]
                )
            )
            process = ManagedProcess([binary, str(conf)], log_path=base_dir / "stdout.log", name="redis-server")
            process.start()
            try:
                wait_until(
                    lambda port=port, process=process: (
                        process.check_alive() or _redis_ping("127.0.0.1", port, password)
                    ),
                    timeout=15,
                    what=f"redis-server on port {port}",
                )
            except (HarnessError, TimeoutError) as exc:
                process.stop()
                if "in use" in tail(log_path, 10) and attempt < attempts:
                    continue
                raise HarnessError(f"redis-server did not start: {exc}\nlog:\n{tail(log_path)}") from None
            return RedisServer("127.0.0.1", port, password, base_dir, log_path, process)
    except BaseException:
        shutil.rmtree(base_dir, ignore_errors=True)
        raise
    raise AssertionError("unreachable")


def stop_redis(server: RedisServer) -> None:
    try:
        server.process.stop(timeout=10)
    finally:
        shutil.rmtree(server.base_dir, ignore_errors=True)


@contextlib.contextmanager
def redis_server() -> Iterator[RedisServer]:
    server = start_redis()
    try:
        yield server
    finally:
        stop_redis(server)


# --------------------------------------------------------------------------- the sample application


def _run_script(argv: Sequence[str], env: Mapping[str, str], timeout: float) -> subprocess.CompletedProcess:
    result = subprocess.run(list(argv), env=dict(env), capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise HarnessError(
            f"{' '.join(map(str, argv))} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    return result


def build_wheelhouse(dest: Path = CACHE_DIR / "wheelhouse", timeout: float = 600) -> Path:
    """examples/webapp/build-wheelhouse.sh with this Python; a no-op when the stamp matches."""
    env = {**os.environ, "PYTHON": sys.executable}
    _run_script([str(WEBAPP_DIR / "build-wheelhouse.sh"), str(dest)], env, timeout)
    return dest


def create_webapp_venv(dest: Path, wheelhouse: Path, timeout: float = 300) -> Path:
    """A virtualenv with the sample app's requirements, installed from the wheelhouse only.

    The venv gets no pip of its own: this interpreter's pip installs into it (`pip --python`),
    without byte-compiling, which takes about 6 s instead of 25 s.
    """
    _run_script([sys.executable, "-m", "venv", "--without-pip", str(dest)], minimal_env(), 120)
    # No index and no machine pip configuration: proves the wheelhouse alone is enough.
    env = minimal_env(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1")
    _run_script(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(dest / "bin" / "python"),
            "install",
            "--quiet",
            "--no-compile",
            "--no-index",
            "--find-links",
            str(wheelhouse),
            "-r",
            str(WEBAPP_REQUIREMENTS),
        ],
        env,
        timeout,
    )
    return dest


@dataclass
class WebappRepo:
    path: Path
    commits: dict[str, str]

    def checkout(self, ref: str, dest: Path) -> Path:
        """A working copy of ref (a tag or branch) at dest, as a deploy would fetch it."""
        _run_script(
            ["git", "-c", "advice.detachedHead=false", "clone", "--quiet", "--branch", ref, str(self.path), str(dest)],
            minimal_env(GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_NOSYSTEM="1"),
            60,
        )
        return dest


def build_webapp_repo(dest: Path) -> WebappRepo:
    """examples/webapp/build-repo.sh DEST; returns the commit id of each tag and of main."""
    result = _run_script([str(WEBAPP_DIR / "build-repo.sh"), str(dest)], minimal_env(), 120)
    commits = dict(line.split() for line in result.stdout.splitlines() if line.strip())
    return WebappRepo(dest, commits)


def playbook_on_localhost(
    tmp_path: Path,
    playbook: str,
    extra_vars: Mapping[str, Any],
    callback: str = "default",
    inventory: Path | None = None,
    options: Sequence[str] = (),
) -> subprocess.CompletedProcess:
    """ansible-playbook (this venv's) running `playbook` (its text) on localhost (or on `inventory`)
    with extra_vars (as a file: any JSON value) and options (e.g. --check), from the project
    directory so its ansible.cfg finds the collection."""
    (tmp_path / "play.yml").write_text(playbook)
    (tmp_path / "extra.json").write_text(json.dumps(dict(extra_vars)))
    where = ["-i", str(inventory)] if inventory else ["-i", "localhost,", "-c", "local"]
    argv = [Path(sys.executable).parent / "ansible-playbook", *where]
    argv += ["-e", f"@{tmp_path / 'extra.json'}"]
    argv += [] if inventory else ["-e", f"ansible_python_interpreter={sys.executable}"]
    return subprocess.run(
        [*argv, *options, tmp_path / "play.yml"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO_ROOT,
        env={**os.environ, "ANSIBLE_STDOUT_CALLBACK": callback, "ANSIBLE_NOCOLOR": "1"},
    )
