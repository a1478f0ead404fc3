"""The sample application (examples/webapp) behaves as the deploy tests will assume.

One virtualenv (installed offline from the wheelhouse) runs every version; each
tag of the built repository is checked out into its own directory, as a deploy
would. The database moves forward only (v1 -> v2, then v3 and v4 on top of v2);
fixtures named after the schema state make each test independent of order.
"""

from __future__ import annotations

import difflib
import json
import secrets
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import helpers

DB_NAME = "journal_sample"
DB_USER = "journal"
REDIS_DB = 3
TAGS = ("v1", "v2", "v3", "v4")


@dataclass
class SampleApp:
    venv: Path
    checkouts: dict[str, Path]
    env: dict[str, str]
    work: Path
    media_root: Path
    processes: list[helpers.ManagedProcess] = field(default_factory=list)

    def bin(self, name: str) -> str:
        return str(self.venv / "bin" / name)

    def manage(self, tag: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(
            [self.bin("python"), "manage.py", *args],
            cwd=self.checkouts[tag],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def manage_ok(self, tag: str, *args: str) -> str:
        result = self.manage(tag, *args)
        assert result.returncode == 0, f"manage.py {' '.join(args)} ({tag}) failed:\n{result.stdout}\n{result.stderr}"
        return result.stdout

    def start(self, argv: list[str], *, cwd: Path, name: str, env: dict[str, str] | None = None):
        process = helpers.ManagedProcess(
            argv, log_path=self.work / "logs" / f"{name}.log", env=env or self.env, cwd=cwd, name=name
        )
        self.processes.append(process)
        return process.start()

    def gunicorn(self, tag: str, name: str, *, cwd: Path | None = None, **env_overrides: str) -> str:
        """Start gunicorn for a checkout on a free port; returns its base URL once /version/ answers."""
        port = helpers.free_port()
        process = self.start(
            [self.bin("gunicorn"), "-c", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}"],
            cwd=cwd or self.checkouts[tag],
            name=name,
            env={**self.env, **env_overrides},
        )
        base = f"http://127.0.0.1:{port}"
        helpers.wait_for_http(f"{base}/version/", timeout=30, process=process)
        return base

    def stop_all(self) -> None:
        helpers.stop_processes(list(reversed(self.processes)))


@pytest.fixture(scope="module")
def sample(webapp_venv, webapp_repo, postgres_server, redis_server, tmp_path_factory) -> Iterator[SampleApp]:
    work = tmp_path_factory.mktemp("sample-app")
    db_password = secrets.token_urlsafe(12)
    postgres_server.create_role(DB_USER, db_password)
    postgres_server.create_database(DB_NAME, owner=DB_USER)
    checkouts = {tag: webapp_repo.checkout(tag, work / tag) for tag in TAGS}
    media_root = work / "media"
    (work / "home").mkdir()
    env = helpers.minimal_env(
        HOME=str(work / "home"),
        DJANGO_SECRET_KEY=secrets.token_urlsafe(32),
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        DATABASE_HOST=postgres_server.host,
        DATABASE_PORT=str(postgres_server.port),
        DATABASE_NAME=DB_NAME,
        DATABASE_USER=DB_USER,
        DATABASE_PASSWORD=db_password,
        REDIS_URL=redis_server.url_for(REDIS_DB),
        MEDIA_ROOT=str(media_root),
        STATIC_ROOT=str(work / "static"),
        LOG_DIR=str(work / "logs"),
        GUNICORN_WORKERS="1",
        GUNICORN_THREADS="2",
    )
    (work / "logs").mkdir()
    app = SampleApp(webapp_venv, checkouts, env, work, media_root)
    try:
        yield app
    finally:
        app.stop_all()
        redis_server.client(REDIS_DB).flushdb()
        postgres_server.drop_database(DB_NAME)
        postgres_server.execute(f"DROP ROLE IF EXISTS {DB_USER}")


@pytest.fixture(scope="module")
def v1_migrated(sample) -> str:
    return sample.manage_ok("v1", "migrate", "--noinput")


@pytest.fixture(scope="module")
def v2_migrated(sample, v1_migrated) -> str:
    return sample.manage_ok("v2", "migrate", "--noinput")


@pytest.fixture(scope="module")
def worker(sample, v1_migrated) -> helpers.ManagedProcess:
    """A real Celery worker running v1 code against the test Redis (it keeps running across schema changes)."""
    process = sample.start(
        [
            sample.bin("celery"),
            "-A",
            "journal",
            "worker",
            "--loglevel",
            "INFO",
            "--concurrency",
            "1",
            "--hostname",
            "sample@%h",
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=sample.checkouts["v1"],
        name="celery-worker",
    )
    helpers.wait_for_log(process, r"sample@\S+ ready\.", timeout=60)
    return process


@pytest.fixture(scope="module")
def v1_web(sample, v1_migrated, worker) -> str:
    return sample.gunicorn("v1", "gunicorn-v1")


def get_health(base: str) -> helpers.HttpResponse:
    return helpers.http_request("GET", f"{base}/health/", timeout=15)


def wait_healthy(base: str, timeout: float = 20) -> helpers.HttpResponse:
    """The worker may need a moment before it answers broadcast pings."""
    return helpers.wait_until(
        lambda: (r := get_health(base)).status == 200 and r, timeout, interval=0.5, what=f"{base}/health/ 200"
    )


def table_columns(postgres_server, table: str) -> list[str]:
    rows = postgres_server.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = %s ORDER BY column_name",
        [table],
        dbname=DB_NAME,
    )
    return [row[0] for row in rows]


# --------------------------------------------------------------------------- build products


def test_repo_tags_history_and_determinism(webapp_repo, tmp_path):
    commits = webapp_repo.commits
    assert set(commits) == {"v1", "v2", "v3", "v4", "v5", "main"}
    assert commits["main"] == commits["v2"]
    git = ["git", "--git-dir", str(webapp_repo.path)]

    def parent(ref: str) -> str:
        return subprocess.run([*git, "rev-parse", f"{ref}^"], capture_output=True, text=True, check=True).stdout.strip()

    assert parent("v2") == commits["v1"]
    assert parent("v3") == commits["v2"]
    assert parent("v4") == commits["v2"], "v4 must branch from v2, not from v3"
    assert parent("v5") == commits["v2"], "v5 must branch from v2"
    for tag in (*TAGS, "v5"):
        version = subprocess.run([*git, "show", f"{tag}:VERSION"], capture_output=True, text=True, check=True).stdout
        assert version.strip() == tag
    rebuilt = helpers.build_webapp_repo(tmp_path / "again.git")
    assert rebuilt.commits == commits, "build-repo.sh must give the same commit ids on every run"


def test_overlays_only_hold_small_changes():
    """Overlay files are whole copies; keep them close to what they replace so they do not drift."""
    webapp = helpers.WEBAPP_DIR
    chain = {"v2": ["v2"], "v3": ["v2", "v3"], "v4": ["v2", "v4"], "v5": ["v2", "v5"]}
    for version, layers in chain.items():
        overlay = webapp / "versions" / version
        for path in overlay.rglob("*"):
            if not path.is_file() or "__pycache__" in path.parts:
                continue
            relative = path.relative_to(overlay)
            base = webapp / "src" / relative
            for layer in layers[:-1]:
                if (webapp / "versions" / layer / relative).exists():
                    base = webapp / "versions" / layer / relative
            if not base.exists() or relative.name == "VERSION":
                continue
            diff = difflib.unified_diff(base.read_text().splitlines(), path.read_text().splitlines(), lineterm="", n=0)
            changed = [line for line in diff if line[:1] in "+-" and line[:3] not in ("+++", "---")]
            assert len(changed) <= 8, f"{version}/{relative} differs from {base} by {len(changed)} lines"


def test_wheelhouse_is_reused(webapp_wheelhouse):
    started = time.monotonic()
    result = subprocess.run(
        [str(helpers.WEBAPP_DIR / "build-wheelhouse.sh"), str(webapp_wheelhouse)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert "up to date" in result.stdout
    assert time.monotonic() - started < 5
    assert any(webapp_wheelhouse.glob("psycopg_binary-*-cp311-*manylinux*x86_64*.whl"))


# --------------------------------------------------------------------------- v1


def test_v1_migrate(sample, v1_migrated):
    assert "Applying articles.0001_initial... OK" in v1_migrated
    assert "Applying certificates.0001_initial... OK" in v1_migrated
    assert "Applying django_celery_results." in v1_migrated
    assert "[X] 0001_initial" in sample.manage_ok("v1", "showmigrations", "articles")
    sample.manage_ok("v1", "makemigrations", "--check", "--dry-run")


def test_collectstatic(sample):
    sample.manage_ok("v1", "collectstatic", "--noinput")
    assert (sample.work / "static" / "admin" / "css" / "base.css").is_file()


def test_v1_health_ok_with_worker(sample, v1_web):
    response = wait_healthy(v1_web)
    body = response.json()
    assert body == {
        "status": "ok",
        "components": {"database": "ok", "redis": "ok", "celery": "ok"},
        "version": "v1",
        "hostname": socket.gethostname(),
    }
    assert "no-cache" in response.headers.get("Cache-Control", "") or "max-age=0" in response.headers.get(
        "Cache-Control", ""
    )
    assert helpers.http_request("GET", f"{v1_web}/version/").json() == {
        "version": "v1",
        "hostname": socket.gethostname(),
    }
    index = helpers.http_request("GET", f"{v1_web}/")
    assert index.status == 200
    assert '<span id="version">v1</span>' in index.text
    assert (sample.work / "logs" / "app.log").exists()
    # gunicorn.conf.py turns off Gunicorn's per-user control socket (two slots would share it).
    assert not (sample.work / "home" / ".gunicorn").exists()


def test_health_degraded_when_redis_is_unreachable(sample, v1_migrated):
    wrong = f"redis://:nope@127.0.0.1:{helpers.free_port()}/0"
    base = sample.gunicorn("v1", "gunicorn-wrong-redis", REDIS_URL=wrong)
    started = time.monotonic()
    response = get_health(base)
    elapsed = time.monotonic() - started
    body = response.json()
    assert response.status == 503
    assert body["status"] == "degraded"
    assert body["components"]["database"] == "ok"
    assert body["components"]["redis"].startswith("error: ")
    # The broker defaults to REDIS_URL, so no worker can answer either.
    assert body["components"]["celery"].startswith("error: ")
    assert elapsed < 8, f"/health/ took {elapsed:.1f}s with Redis down: every check must be bounded"


def test_certificate_generated_by_worker(sample, v1_web, postgres_server):
    assert "articles: 5 created" in sample.manage_ok("v1", "seed_demo", "--articles", "5", "--certificates", "2")
    assert "articles: 0 created" in sample.manage_ok("v1", "seed_demo", "--articles", "5", "--certificates", "2")
    articles = helpers.http_request("GET", f"{v1_web}/api/articles/").json()
    assert len(articles) >= 5
    article_id = articles[0]["id"]

    bad = helpers.http_request("POST", f"{v1_web}/api/certificates/", {"recipient": "x"})
    assert bad.status == 400
    missing = helpers.http_request("POST", f"{v1_web}/api/certificates/", {"article_id": 999999, "recipient": "x"})
    assert missing.status == 404

    created = helpers.http_request(
        "POST", f"{v1_web}/api/certificates/", {"article_id": article_id, "recipient": "Ada L."}
    )
    assert created.status == 202, created.text
    certificate_id = created.json()["id"]

    def issued():
        body = helpers.http_request("GET", f"{v1_web}/api/certificates/{certificate_id}/").json()
        return body if body["status"] == "ISSUED" else None

    body = helpers.wait_until(issued, timeout=30, interval=0.2, what=f"certificate {certificate_id} issued")
    path = Path(body["path"])
    assert path == sample.media_root / "certificates" / f"{certificate_id}.txt"
    assert body["file"] == f"certificates/{certificate_id}.txt"
    assert "Awarded to:  Ada L." in path.read_text()
    rows = postgres_server.execute(
        "SELECT status, task_name FROM django_celery_results_taskresult WHERE task_id = %s",
        [body["task_id"]],
        dbname=DB_NAME,
    )
    assert rows == [("SUCCESS", "certificates.tasks.generate_certificate")]

    # The runbook's bulk retry: seed_demo's certificates were never queued; requeue them.
    assert "2 certificate(s) queued" in sample.manage_ok("v1", "requeue_certificates")
    helpers.wait_until(
        lambda: (
            postgres_server.execute(
                "SELECT count(*) FROM certificates_certificate WHERE status <> 'ISSUED'", dbname=DB_NAME
            )
            == [(0,)]
        ),
        timeout=30,
        interval=0.2,
        what="every certificate issued",
    )


def test_heartbeat_task_writes_redis(sample, worker, redis_server):
    client = redis_server.client(REDIS_DB)
    client.delete("journal:beat:last")
    subprocess.run(
        [sample.bin("celery"), "-A", "journal", "call", "articles.tasks.record_heartbeat"],
        cwd=sample.checkouts["v1"],
        env=sample.env,
        check=True,
        capture_output=True,
        timeout=60,
    )
    raw = helpers.wait_until(lambda: client.get("journal:beat:last"), timeout=20, what="journal:beat:last")
    value = json.loads(raw)
    assert set(value) == {"time", "hostname"}
    assert value["hostname"] == socket.gethostname()
    client.close()


def test_release_file_overrides_version(sample, webapp_repo, v1_migrated):
    checkout = webapp_repo.checkout("v1", sample.work / "release-check")
    (checkout / "RELEASE").write_text("20250106T090000Z-v1\n")
    base = sample.gunicorn("v1", "gunicorn-release", cwd=checkout)
    assert helpers.http_request("GET", f"{base}/version/").json()["version"] == "20250106T090000Z-v1"
    assert '<span id="version">20250106T090000Z-v1</span>' in helpers.http_request("GET", f"{base}/").text


# --------------------------------------------------------------------------- v2, v3, v4


def test_v2_migration_is_backward_compatible(sample, v1_web, v2_migrated, postgres_server):
    applied = [line for line in v2_migrated.splitlines() if "Applying " in line]
    assert applied == ["  Applying articles.0002_article_summary... OK"]
    assert "summary" in table_columns(postgres_server, "articles_article")
    sample.manage_ok("v2", "makemigrations", "--check", "--dry-run")

    # v1 code against the v2 schema: reads, inserts (without the new column) and the task path all work.
    assert "articles: 3 created" in sample.manage_ok("v1", "seed_demo", "--articles", "8", "--certificates", "0")
    health = wait_healthy(v1_web)
    assert health.json()["version"] == "v1"
    articles = helpers.http_request("GET", f"{v1_web}/api/articles/").json()
    assert len(articles) == 8
    assert "summary" not in articles[0]
    created = helpers.http_request(
        "POST", f"{v1_web}/api/certificates/", {"article_id": articles[-1]["id"], "recipient": "Grace H."}
    )
    assert created.status == 202

    v2 = sample.gunicorn("v2", "gunicorn-v2")
    assert wait_healthy(v2).json()["version"] == "v2"
    assert helpers.http_request("GET", f"{v2}/api/articles/?limit=1").json()[0]["summary"] is None


def test_v3_health_fails(sample, v2_migrated, worker):
    assert "No migrations to apply." in sample.manage_ok("v3", "migrate", "--noinput")
    base = sample.gunicorn("v3", "gunicorn-v3")
    response = get_health(base)
    body = response.json()
    assert response.status == 503
    assert body["status"] == "degraded"
    assert body["version"] == "v3"
    assert "articles_articlemetrics" in body["components"]["database"]
    assert body["components"]["database"].startswith("error: ")
    assert body["components"]["redis"] == "ok"
    assert helpers.http_request("GET", f"{base}/version/").json()["version"] == "v3"
    assert helpers.http_request("GET", f"{base}/").status == 200
    assert helpers.http_request("GET", f"{base}/api/articles/").status == 200


def test_v4_migration_fails_and_changes_nothing(sample, v2_migrated, postgres_server):
    before_plan = sample.manage_ok("v2", "showmigrations")
    before_columns = table_columns(postgres_server, "articles_article")
    result = sample.manage("v4", "migrate", "--noinput")
    assert result.returncode != 0
    assert "Applying articles.0003_article_word_count..." in result.stdout
    assert "fails on purpose" in result.stderr
    assert sample.manage_ok("v2", "showmigrations") == before_plan
    assert table_columns(postgres_server, "articles_article") == before_columns
    assert "word_count" not in before_columns
    recorded = postgres_server.execute(
        "SELECT name FROM django_migrations WHERE app = 'articles' ORDER BY name", dbname=DB_NAME
    )
    assert recorded == [("0001_initial",), ("0002_article_summary",)]
    assert "[ ] 0003_article_word_count" in sample.manage_ok("v4", "showmigrations", "articles")


def test_missing_secret_key_is_a_clear_error(sample):
    env = {key: value for key, value in sample.env.items() if key != "DJANGO_SECRET_KEY"}
    result = subprocess.run(
        [sample.bin("python"), "manage.py", "check"],
        cwd=sample.checkouts["v1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is not set" in result.stderr
