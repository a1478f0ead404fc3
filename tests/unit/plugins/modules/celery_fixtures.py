"""Fixtures for the Celery and RQ module tests: real workers, a real RabbitMQ, and a runner
that calls a module's main() in this process as Ansible would (arguments in, JSON out).

A pytest plugin, not a conftest: the test modules load it with
`pytest_plugins = [...celery_fixtures]`, so the session fixtures below (RabbitMQ, the
Celery workers) start once for all three test modules.

    run_module(name, args, check_mode=False) -> ModuleResult (data, failed, changed, stdout)
    celery_redis       BrokerInfo for its own Redis database (url, password, db, client())
    celery_workers     alpha@opsbook-test (celery, q_alpha) and beta@opsbook-test (celery, q_beta)
    rabbitmq_server    RabbitMQ started for the session (node, port, user, password, url, ctl())
    rabbit_worker      rabbit@opsbook-test on RabbitMQ (celery, q_rabbit)
    journal_stack      the sample app migrated into its own database, its worker recording results
                       with django-celery-results (for requeue_failed)
    start_celery_worker(...)  one more worker, for a test that stops or drains it
    rq_redis, start_rq_worker(...)  RQ on its own Redis database, `rq worker` processes
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import helpers

HERE = Path(__file__).resolve().parent
COLLECTIONS = helpers.REPO_ROOT / "playbooks" / "collections"
VENV_BIN = Path(sys.executable).parent
# Redis databases of the shared redis_server, one per family of tests (the sample app uses 3).
CELERY_REDIS_DB = 5
JOURNAL_REDIS_DB = 6
RQ_REDIS_DB = 7
NODE_SUFFIX = "opsbook-test"

if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))


# --------------------------------------------------------------------------- running a module


# Re-exported for the Celery and RQ tests.
from module_runner import ModuleResult, run_module  # noqa: E402, F401

# --------------------------------------------------------------------------- Celery workers


@dataclass
class BrokerInfo:
    url: str = field(repr=False)
    password: str = field(repr=False)
    redis: helpers.RedisServer | None = None
    db: int | None = None

    def client(self):
        assert self.redis is not None
        return self.redis.client(self.db)


def node(name: str) -> str:
    return f"{name}@{NODE_SUFFIX}"


def start_celery_worker(
    name: str,
    queues: list[str],
    broker_url: str,
    log_dir: Path,
    *,
    transport_options: dict | None = None,
    concurrency: int = 1,
    wait: bool = True,
    accept_content: list[str] | None = None,
) -> helpers.ManagedProcess:
    """celery -A celery_testapp worker -n NAME@opsbook-test -Q QUEUES (prefork, so it answers while a task runs)."""
    env = helpers.minimal_env(
        CELERY_TESTAPP_BROKER=broker_url,
        CELERY_TESTAPP_TRANSPORT_OPTIONS=json.dumps(transport_options or {}),
        CELERY_TESTAPP_ACCEPT=",".join(accept_content or []),
        # Celery refuses to run a pickle-accepting worker as root unless told; the tests run as root in CI.
        C_FORCE_ROOT="1" if "pickle" in (accept_content or []) and os.geteuid() == 0 else "",
        PYTHONPATH=str(HERE),
        HOME=str(log_dir),
    )
    process = helpers.ManagedProcess(
        [
            str(VENV_BIN / "celery"),
            "-A",
            "celery_testapp",
            "worker",
            "-n",
            node(name),
            "-Q",
            ",".join(queues),
            "--concurrency",
            str(concurrency),
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel",
            "INFO",
        ],
        log_path=log_dir / f"celery-{name}.log",
        env=env,
        cwd=HERE,
        name=f"celery-{name}",
    )
    process.start()
    if wait:
        wait_ready(process, name, broker_url, accept_content=accept_content)
    return process


def wait_ready(
    process: helpers.ManagedProcess,
    name: str,
    broker_url: str,
    timeout: float = 60,
    accept_content: list[str] | None = None,
) -> None:
    """Until the log says ready and the worker answers a ping: it logs "ready" a moment before its
    control consumer listens, and a broadcast sent in that moment is lost."""
    from celery import Celery

    app = Celery("opsbook_tests", broker=broker_url, set_as_current=False)
    if accept_content:
        app.conf.update(accept_content=accept_content, task_serializer=accept_content[0])
    try:
        helpers.wait_for_log(process, rf"{name}@{NODE_SUFFIX} ready\.", timeout=timeout)
        helpers.wait_until(
            lambda: process.check_alive() or app.control.ping([node(name)], timeout=0.3),
            timeout,
            interval=0.05,
            what=f"{node(name)} to answer a ping",
        )
    except (helpers.HarnessError, TimeoutError) as exc:
        process.stop()
        pytest.fail(f"{exc}\n{process.log()}", pytrace=False)
    finally:
        app.close()


@pytest.fixture(scope="session")
def celery_redis(redis_server) -> Iterator[BrokerInfo]:
    client = redis_server.client(CELERY_REDIS_DB)
    client.flushdb()
    try:
        yield BrokerInfo(redis_server.url_for(CELERY_REDIS_DB), redis_server.password, redis_server, CELERY_REDIS_DB)
    finally:
        client.flushdb()
        client.close()


@dataclass
class Workers:
    broker: BrokerInfo
    processes: dict[str, helpers.ManagedProcess]

    @property
    def names(self) -> list[str]:
        return sorted(node(name) for name in self.processes)


@pytest.fixture(scope="session")
def celery_workers(celery_redis, tmp_path_factory) -> Iterator[Workers]:
    """Two workers that tests may inspect and send tasks to; a test that changes what they consume
    restores it."""
    log_dir = tmp_path_factory.mktemp("celery-workers")
    spec = {"alpha": ["celery", "q_alpha"], "beta": ["celery", "q_beta"]}
    processes = {
        name: start_celery_worker(name, queues, celery_redis.url, log_dir, wait=False) for name, queues in spec.items()
    }
    try:
        for name, process in processes.items():
            wait_ready(process, name, celery_redis.url)
        yield Workers(celery_redis, processes)
    finally:
        helpers.stop_processes(list(processes.values()))


# --------------------------------------------------------------------------- RabbitMQ


RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
RABBITMQCTL = "/usr/lib/rabbitmq/bin/rabbitmqctl"


@dataclass
class RabbitMQServer:
    node: str
    port: int
    user: str
    password: str = field(repr=False)
    base_dir: Path
    env: dict[str, str] = field(repr=False)
    process: helpers.ManagedProcess = field(repr=False)

    @property
    def url(self) -> str:
        return f"amqp://{self.user}:{self.password}@127.0.0.1:{self.port}//"

    def ctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(
            [RABBITMQCTL, "-n", self.node, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def start_rabbitmq(timeout: float = 90) -> RabbitMQServer:
    """A RabbitMQ node of its own: unique node name, random AMQP, distribution and epmd ports, Mnesia
    and logs in a temporary directory, the user's password in a 0600 config file.

    /usr/sbin/rabbitmq-server is a wrapper that, for root, re-runs the server as the rabbitmq user
    with `su` in /var/lib/rabbitmq and sends its output to /var/log/rabbitmq; the script it wraps
    runs the same server as root with every path taken from the environment below.
    """
    for path in (RABBITMQ_SERVER, RABBITMQCTL):
        if not Path(path).is_file():
            raise helpers.HarnessError(f"{path} not found: apt-get install rabbitmq-server (scripts/bootstrap.sh does)")
    base = Path(tempfile.mkdtemp(prefix="opsbook-rabbitmq-"))
    password = secrets.token_urlsafe(18)
    name = f"opsbook{secrets.token_hex(4)}@localhost"
    amqp_port, dist_port, epmd_port = helpers.free_port(), helpers.free_port(), helpers.free_port()
    (base / "home").mkdir()
    config = base / "rabbitmq.conf"
    config.touch(mode=0o600)
    config.write_text(
        "\n".join(
            [
                "default_user = opsbook",
                f"default_pass = {password}",
                "loopback_users = none",
                # A full /tmp must not block publishers in a test.
                "disk_free_limit.absolute = 1MB",
                "",
            ]
        )
    )
    (base / "enabled_plugins").write_text("[].\n")
    env = helpers.minimal_env(
        HOME=str(base / "home"),  # the Erlang cookie, shared by the server and rabbitmqctl
        RABBITMQ_NODENAME=name,
        RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
        RABBITMQ_NODE_PORT=str(amqp_port),
        RABBITMQ_DIST_PORT=str(dist_port),
        ERL_EPMD_PORT=str(epmd_port),
        RABBITMQ_MNESIA_BASE=str(base / "mnesia"),
        RABBITMQ_LOG_BASE=str(base / "log"),
        RABBITMQ_CONFIG_FILE=str(base / "rabbitmq"),
        RABBITMQ_ENABLED_PLUGINS_FILE=str(base / "enabled_plugins"),
        RABBITMQ_PID_FILE=str(base / "rabbitmq.pid"),
        RABBITMQ_CONF_ENV_FILE=str(base / "rabbitmq-env.conf"),  # absent: /etc/rabbitmq's is not read
        RABBITMQ_ADVANCED_CONFIG_FILE=str(base / "advanced.config"),
    )
    process = helpers.ManagedProcess(
        [RABBITMQ_SERVER], log_path=base / "stdout.log", env=env, cwd=base, name="rabbitmq-server"
    )
    server = RabbitMQServer(name, amqp_port, "opsbook", password, base, env, process)
    process.start()
    deadline = time.monotonic() + timeout
    last = ""
    try:
        while True:
            process.check_alive()
            # Fails at once while the node is not registered with epmd yet, then waits for the boot.
            result = server.ctl("await_startup", "--timeout", "30", timeout=40)
            if result.returncode == 0:
                return server
            last = (result.stdout + result.stderr)[-1500:]
            if time.monotonic() > deadline:
                raise helpers.HarnessError(f"RabbitMQ {name} did not start in {timeout:.0f}s: {last}")
            time.sleep(0.5)
    except BaseException as exc:
        log = helpers.tail(base / "log" / f"{name}.log")
        stop_rabbitmq(server)
        if isinstance(exc, helpers.HarnessError):
            raise helpers.HarnessError(f"{exc}\nserver log:\n{log}") from None
        raise


def stop_rabbitmq(server: RabbitMQServer) -> None:
    """rabbitmqctl stop, then whatever is left of the process group, then this node's own epmd."""
    try:
        if server.process.alive():
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                server.ctl("stop", timeout=30)
        server.process.stop(timeout=15)
        # epmd daemonizes out of the server's process group; it listens on this node's private port.
        epmd = shutil.which("epmd") or "/usr/bin/epmd"
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            subprocess.run(
                [epmd, "-port", server.env["ERL_EPMD_PORT"], "-kill"],
                env=server.env,
                capture_output=True,
                timeout=10,
                check=False,
            )
    finally:
        shutil.rmtree(server.base_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def rabbitmq_server() -> Iterator[RabbitMQServer]:
    try:
        server = start_rabbitmq()
    except helpers.HarnessError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield server
    finally:
        stop_rabbitmq(server)


@pytest.fixture(scope="session")
def rabbit_worker(rabbitmq_server, tmp_path_factory) -> Iterator[helpers.ManagedProcess]:
    log_dir = tmp_path_factory.mktemp("celery-rabbit")
    process = start_celery_worker("rabbit", ["celery", "q_rabbit"], rabbitmq_server.url, log_dir)
    try:
        yield process
    finally:
        process.stop()


# --------------------------------------------------------------------------- the sample app's worker


JOURNAL_DB = "celery_requeue"
JOURNAL_READER = "celery_requeue_reader"


@dataclass
class JournalStack:
    """The sample app (examples/webapp) migrated into its own database, with one real worker on Redis
    that records results with django-celery-results (result_extended on, as the app ships)."""

    broker_url: str = field(repr=False)
    postgres: helpers.PostgresServer = field(repr=False)
    reader_password: str = field(repr=False)
    media_root: Path
    worker: helpers.ManagedProcess = field(repr=False)

    def rows(self, statement: str, params=None) -> list[tuple]:
        return self.postgres.execute(statement, params, dbname=JOURNAL_DB)

    def result_db(self) -> dict:
        """Module options for the result table: a role that may only SELECT from it."""
        return {
            "host": self.postgres.host,
            "port": self.postgres.port,
            "user": JOURNAL_READER,
            "password": self.reader_password,
            "dbname": JOURNAL_DB,
        }


@pytest.fixture(scope="session")
def journal_stack(webapp_venv, postgres_server, redis_server, tmp_path_factory) -> Iterator[JournalStack]:
    work = tmp_path_factory.mktemp("journal")
    src = work / "src"
    shutil.copytree(helpers.WEBAPP_DIR / "src", src, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("media", "static", "logs", "home"):
        (work / name).mkdir()
    postgres_server.create_database(JOURNAL_DB)
    broker_url = redis_server.url_for(JOURNAL_REDIS_DB)
    redis_server.client(JOURNAL_REDIS_DB).flushdb()
    env = helpers.minimal_env(
        HOME=str(work / "home"),
        DJANGO_SECRET_KEY=secrets.token_urlsafe(32),
        DATABASE_HOST=postgres_server.host,
        DATABASE_PORT=str(postgres_server.port),
        DATABASE_NAME=JOURNAL_DB,
        DATABASE_USER=postgres_server.user,
        DATABASE_PASSWORD=postgres_server.password,
        REDIS_URL=broker_url,
        MEDIA_ROOT=str(work / "media"),
        STATIC_ROOT=str(work / "static"),
        LOG_DIR=str(work / "logs"),
    )
    python = str(webapp_venv / "bin" / "python")
    migrate = subprocess.run(
        [python, "manage.py", "migrate", "--noinput"], cwd=src, env=env, capture_output=True, text=True, timeout=180
    )
    if migrate.returncode != 0:
        postgres_server.drop_database(JOURNAL_DB)
        pytest.fail(f"sample app migrate failed:\n{migrate.stdout}\n{migrate.stderr}", pytrace=False)
    reader_password = secrets.token_urlsafe(12)
    postgres_server.create_role(JOURNAL_READER, reader_password)
    postgres_server.execute(f"GRANT SELECT ON django_celery_results_taskresult TO {JOURNAL_READER}", dbname=JOURNAL_DB)
    worker = helpers.ManagedProcess(
        [
            str(webapp_venv / "bin" / "celery"),
            "-A",
            "journal",
            "worker",
            "-n",
            node("journal"),
            "--concurrency",
            "1",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel",
            "INFO",
        ],
        log_path=work / "logs" / "worker.log",
        env=env,
        cwd=src,
        name="celery-journal",
    ).start()
    try:
        wait_ready(worker, "journal", broker_url)
        yield JournalStack(broker_url, postgres_server, reader_password, work / "media", worker)
    finally:
        worker.stop()
        postgres_server.drop_database(JOURNAL_DB)
        postgres_server.execute(f"DROP ROLE IF EXISTS {JOURNAL_READER}")
        redis_server.client(JOURNAL_REDIS_DB).flushdb()


# --------------------------------------------------------------------------- RQ


@pytest.fixture(scope="session")
def rq_redis(redis_server) -> Iterator[BrokerInfo]:
    client = redis_server.client(RQ_REDIS_DB)
    client.flushdb()
    try:
        yield BrokerInfo(redis_server.url_for(RQ_REDIS_DB), redis_server.password, redis_server, RQ_REDIS_DB)
    finally:
        client.flushdb()
        client.close()


def start_rq_worker(name: str, queues: list[str], broker: BrokerInfo, log_dir: Path) -> helpers.ManagedProcess:
    """`rq worker` (forking a work horse per job, as deployed) with the URL in RQ_REDIS_URL, not argv."""
    env = helpers.minimal_env(RQ_REDIS_URL=broker.url, PYTHONPATH=str(HERE), HOME=str(log_dir))
    process = helpers.ManagedProcess(
        [str(VENV_BIN / "rq"), "worker", "--name", name, "--logging_level", "INFO", *queues],
        log_path=log_dir / f"rq-{name}.log",
        env=env,
        cwd=HERE,
        name=f"rq-{name}",
    ).start()
    client = broker.client()
    try:
        helpers.wait_until(
            lambda: process.check_alive() or client.hget(f"rq:worker:{name}", "state") in (b"idle", b"busy"),
            30,
            interval=0.05,
            what=f"RQ worker {name} to register",
        )
    except (helpers.HarnessError, TimeoutError) as exc:
        process.stop()
        pytest.fail(f"{exc}\n{process.log()}", pytrace=False)
    finally:
        client.close()
    return process


# --------------------------------------------------------------------------- small tools


def send(broker_url: str, task: str, args=(), kwargs=None, **options) -> str:
    """Send a task by name from a bare app (as a producer with no project code would)."""
    from celery import Celery

    app = Celery("opsbook_tests", broker=broker_url, set_as_current=False)
    try:
        result = app.send_task(task, args=list(args), kwargs=kwargs or {}, **options)
        return result.id
    finally:
        app.close()


def wait_until(predicate, timeout: float, what: str, interval: float = 0.1):
    try:
        return helpers.wait_until(predicate, timeout, interval=interval, what=what)
    except TimeoutError as exc:
        pytest.fail(str(exc), pytrace=False)


def assert_secret_free(result: ModuleResult, *secrets_: str) -> None:
    """Neither the printed JSON nor any message may hold a secret."""
    for secret in secrets_:
        assert secret not in result.stdout, f"a secret appears in the module output: {result.stdout[:2000]}"
