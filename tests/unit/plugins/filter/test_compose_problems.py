"""compose_problems: what app_runtime compose refuses, each problem naming its variable; nothing under systemd."""

from ansible_collections.opsbook.webstack.plugins.filter.app_problems import app_problems_by_host
from ansible_collections.opsbook.webstack.plugins.filter.compose_problems import compose_problems

GOOD = {"app_runtime": "compose", "app_compose_file": "compose.yml.j2"}


def test_a_complete_compose_description_and_systemd_have_no_problem():
    assert compose_problems(GOOD) == []
    assert compose_problems({**GOOD, "app_image_name": "team/journal", "app_dockerfile": "docker/Dockerfile"}) == []
    assert compose_problems({"app_slots": {"blue": {}}, "app_commands": [{"name": "x", "run": "build"}]}) == []
    assert compose_problems({"app_runtime": "systemd"}) == []
    for registry in ("registry.example.com/team/journal", "10.213.77.10:5000/journal", "localhost:5000/journal",
                     "localhost/journal", "registry:5000/a/b-c_d.e"):  # fmt: skip
        assert compose_problems({**GOOD, "app_image": registry}) == [], registry


def test_app_image_must_be_a_registry_repository_without_a_tag():
    for bad in ("journal", "team/journal", "registry.example.com/Journal", "registry.example.com/journal:v2",
                "registry.example.com/journal@sha256:abc", "registry.example.com", "https://reg.example.com/j",
                "reg.example.com/j; rm -rf /", 5000):  # fmt: skip
        problems = compose_problems({**GOOD, "app_image": bad})
        assert len(problems) == 1 and problems[0].startswith("app_image must name"), (bad, problems)
    both = compose_problems({**GOOD, "app_image": "reg.example.com/journal", "app_image_name": "journal"})
    assert both == ["app_image ('reg.example.com/journal') and app_image_name ('journal') both name the release's"
                    " image: set one."]  # fmt: skip


def test_each_problem_names_its_variable():
    assert [p.split()[0] for p in compose_problems({"app_runtime": "compose"})] == ["app_compose_file"]
    assert "app_compose_file" in compose_problems({**GOOD, "app_compose_file": "  "})[0]
    assert compose_problems({**GOOD, "app_compose_service": "we b"})[0].startswith("app_compose_service")
    assert compose_problems({**GOOD, "app_image_name": "Journal"})[0].startswith("app_image_name")
    for bad in ("/etc/Dockerfile", "../Dockerfile", ""):
        assert compose_problems({**GOOD, "app_dockerfile": bad})[0].startswith("app_dockerfile"), bad
    # Blue-green slots are two projects, <app_name>-blue and <app_name>-green: no problem.
    assert compose_problems({**GOOD, "app_slots": {"blue": {"port": 8001}}, "app_name": "journal_bg-2"}) == []
    built = compose_problems({**GOOD, "app_commands": [{"name": "compress", "argv": ["x"], "run": "build"}]})
    assert built[0].startswith("app_commands entries compress")


def test_validate_runs_it_on_every_host():
    views = {
        "app1": {"values": {"app_name": "journal", "app_user": "journal", "app_root": "/srv/journal",
                            "app_http_port": 8000, "app_workers": [], "app_runtime": "compose"}},
        "app2": {"values": {"app_name": "journal", "app_user": "journal", "app_root": "/srv/journal",
                            "app_http_port": 8000, "app_workers": [], **GOOD}},
    }  # fmt: skip
    problems = app_problems_by_host(views)
    assert problems["app2"] == []
    assert [p.split()[0] for p in problems["app1"]] == ["app_compose_file"]


def test_the_database_service_names_its_variable():
    """app_db_compose_service: PostgreSQL as a service of the compose project on the db host."""
    assert compose_problems({**GOOD, "app_db_compose_service": "db"}) == []
    assert compose_problems({**GOOD, "app_db_compose_service": ""}) == []
    assert compose_problems({"app_runtime": "systemd", "app_db_compose_service": ""}) == []
    for app in ({"app_db_compose_service": "db"}, {"app_runtime": "systemd", "app_db_compose_service": "db"}):
        (problem,) = compose_problems(app)
        assert problem.startswith("app_db_compose_service ('db') needs app_runtime compose"), problem
    for bad in ("d b", "-db", ["db"]):
        (problem,) = compose_problems({**GOOD, "app_db_compose_service": bad})
        assert problem.startswith("app_db_compose_service must be a compose service name"), problem
    (problem,) = compose_problems({**GOOD, "app_db_compose_service": "web"})
    assert problem.startswith("app_db_compose_service ('web') must not be app_compose_service"), problem


def test_rq_workers_with_slots_are_refused_under_systemd_only():
    app = {"app_name": "journal", "app_user": "journal", "app_root": "/srv/journal", "app_http_port": 8000,
           "app_workers": [{"name": "rq", "kind": "rq", "queues": ["default"]}],
           "app_slots": {"blue": {"group": "app", "port": 8001}, "green": {"group": "app", "port": 8002}}}  # fmt: skip
    groups = {"app": ["app1"]}
    systemd = app_problems_by_host({"app1": {"values": app}}, groups=groups)["app1"]
    assert any(p.startswith("app_workers item rq is kind rq but app_slots is set") for p in systemd), systemd
    compose = app_problems_by_host({"app1": {"values": {**app, **GOOD}}}, groups=groups)["app1"]
    assert not any("app_slots" in p for p in compose), compose


def test_the_database_project_names_its_variable():
    """app_db_compose_project: the db service's compose project, when it is not app_name."""
    assert compose_problems({**GOOD, "app_db_compose_service": "db", "app_db_compose_project": "journal-db"}) == []
    (problem,) = compose_problems({**GOOD, "app_db_compose_service": "db", "app_db_compose_project": "Journal DB"})
    assert problem.startswith("app_db_compose_project must be a compose project name"), problem
    (problem,) = compose_problems({**GOOD, "app_db_compose_project": "journal"})
    assert problem.startswith("app_db_compose_project ('journal') is only read with app_db_compose_service"), problem


def test_app_media_volume_is_a_volume_name_under_compose_only():
    assert compose_problems({**GOOD, "app_media_volume": "journal_media"}) == []
    assert compose_problems({"app_media_volume": ""}) == []
    [systemd] = compose_problems({"app_runtime": "systemd", "app_media_volume": "journal_media"})
    assert systemd.startswith("app_media_volume ('journal_media') needs app_runtime compose")
    for bad in ("journal media", "/var/lib/docker/volumes/x", "-x", "x", "../x", 7):
        [problem] = compose_problems({**GOOD, "app_media_volume": bad})
        assert problem.startswith("app_media_volume must be a Docker volume name"), (bad, problem)
