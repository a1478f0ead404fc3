"""Issue 25: how `release.sh build` (roles/deploy/files/release.sh, run as build.yml runs it)
installs a release's dependencies with each app_installer, and links app_config_files.

Real pip in a real virtualenv made by /usr/bin/python3, offline (--no-index) from a wheelhouse
of small wheels the test writes itself (so the hashes a lock records are the files' own), the
way a deploy installs from deploy_wheelhouse. The pyproject case builds the project with an
in-tree PEP 517 backend, so no build backend has to be downloaded either."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest
import yaml

import helpers

ROOT = Path(__file__).resolve().parents[2]
RELEASE_SH = ROOT / "roles" / "deploy" / "files" / "release.sh"

pytestmark = pytest.mark.skipif(
    not Path("/usr/bin/python3").exists(), reason="the role makes venvs with /usr/bin/python3"
)


def wheel(dest: Path, name: str, version: str, requires: tuple[str, ...] = ()) -> Path:
    """A minimal pure-Python wheel of `name` (a module printing its version) that pip installs."""
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}.py": f"VERSION = {version!r}\n",
        f"{dist}/METADATA": "Metadata-Version: 2.1\n"
        f"Name: {name}\nVersion: {version}\n" + "".join(f"Requires-Dist: {r}\n" for r in requires),
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: opsbook-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = ""
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record += f"{path},sha256={digest},{len(text.encode())}\n"
    files[f"{dist}/RECORD"] = record + f"{dist}/RECORD,,\n"
    path = dest / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for name_in_zip, text in files.items():
            zf.writestr(name_in_zip, text)
    return path


def sha(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def wheels(tmp_path: Path) -> dict[str, Path]:
    house = tmp_path / "wheels"
    house.mkdir()
    return {
        "alpha": wheel(house, "alpha", "1.0", ("beta>=2",)),
        "beta": wheel(house, "beta", "2.0"),
        "winonly": wheel(house, "winonly", "1.0"),
        "devtool": wheel(house, "devtool", "1.0"),
    }


def code_archive(tmp_path: Path, files: dict[str, str]) -> Path:
    archive = tmp_path / "code.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return archive


def build(
    tmp_path: Path,
    files: dict[str, str],
    installer: str,
    wheels: dict[str, Path],
    *config: str,
    env: dict | None = None,
) -> subprocess.CompletedProcess:
    rel = tmp_path / "app" / "releases" / "20261206T000000Z-v1"
    rel.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [
            "/bin/sh",
            "-ec",
            RELEASE_SH.read_text(),
            "release",
            "build",
            str(rel),
            str(code_archive(tmp_path, files)),
            "abc123",
            rel.name,
            "requirements.txt",
            str(next(iter(wheels.values())).parent),
            installer,
            "/usr/bin/python3",
            *config,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PIP_CONFIG_FILE": os.devnull, "PIP_NO_CACHE_DIR": "1", **(env or {})},
    )


def installed(tmp_path: Path) -> set[str]:
    rel = tmp_path / "app" / "releases" / "20261206T000000Z-v1"
    out = subprocess.run(
        [rel / "venv" / "bin" / "pip", "list", "--format=json", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        check=True,
    )
    return {f"{p['name']}=={p['version']}" for p in json.loads(out.stdout) if p["name"] not in ("pip", "setuptools")}


def test_requirements_installs_the_requirements_file_and_links_the_config_files(tmp_path, wheels):
    shared = tmp_path / "app" / "shared" / "config"
    (shared / "site").mkdir(parents=True)
    (shared / "site" / "local_settings.py").write_text("SECRET = 'x'\n")
    files = {"requirements.txt": "alpha==1.0\n", "site/local_settings.py": "# the example the code ships\n"}
    out = build(tmp_path, files, "requirements", wheels, "site/local_settings.py", "app.ini")
    assert out.returncode == 0, out.stderr
    assert installed(tmp_path) == {"alpha==1.0", "beta==2.0"}
    rel = tmp_path / "app" / "releases" / "20261206T000000Z-v1"
    assert os.readlink(rel / "site" / "local_settings.py") == str(shared / "site" / "local_settings.py")
    assert (rel / "site" / "local_settings.py").read_text() == "SECRET = 'x'\n"
    assert os.readlink(rel / "app.ini") == str(shared / "app.ini")  # dangling until rendered: still linked
    assert not (rel / ".installing").exists()


BACKEND = """
import base64, hashlib, os, zipfile
def _rec(p, t):
    d = base64.urlsafe_b64encode(hashlib.sha256(t).digest()).rstrip(b"=").decode()
    return f"{p},sha256={d},{len(t)}\\n"
def get_requires_for_build_wheel(config_settings=None):
    return []
def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    dist = "journal_app-3.0.dist-info"
    files = {"journal_app.py": b"V = 3\\n",
             dist + "/METADATA": b"Metadata-Version: 2.1\\nName: journal-app\\nVersion: 3.0\\n"
                                 b"Requires-Dist: alpha==1.0\\n",
             dist + "/WHEEL": b"Wheel-Version: 1.0\\nGenerator: t\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"}
    name = "journal_app-3.0-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as z:
        record = ""
        for p, t in files.items():
            z.writestr(p, t)
            record += _rec(p, t)
        z.writestr(dist + "/RECORD", record + dist + "/RECORD,,\\n")
    return name
"""


def test_pyproject_installs_the_project_with_its_dependencies(tmp_path, wheels):
    files = {
        "pyproject.toml": '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n',
        "backend.py": BACKEND,
    }
    out = build(tmp_path, files, "pyproject", wheels)
    assert out.returncode == 0, out.stderr
    assert installed(tmp_path) == {"alpha==1.0", "beta==2.0", "journal-app==3.0"}


def test_a_sdist_with_extras_and_extra_requirements(tmp_path, wheels):
    """A PyPI sdist as published: every file under <name>-<version>/ (deploy_archive_strip_components 1),
    the project with an extra (app_install_extras) and what it does not depend on (app_extra_requirements)."""
    extra = "b\"Requires-Dist: alpha==1.0\\nProvides-Extra: db\\nRequires-Dist: devtool==1.0; extra == 'db'\\n\""
    backend = BACKEND.replace('b"Requires-Dist: alpha==1.0\\n"', extra)
    assert backend != BACKEND
    pyproject = '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n'
    files = {"journal-app-3.0/pyproject.toml": pyproject, "journal-app-3.0/backend.py": backend}
    env = {"RELEASE_STRIP_COMPONENTS": "1", "RELEASE_EXTRAS": "db", "RELEASE_EXTRA_REQUIREMENTS": "winonly==1.0\n"}
    out = build(tmp_path, files, "pyproject", wheels, env=env)
    assert out.returncode == 0, out.stderr
    assert installed(tmp_path) == {"alpha==1.0", "beta==2.0", "devtool==1.0", "winonly==1.0", "journal-app==3.0"}
    assert (tmp_path / "app" / "releases" / "20261206T000000Z-v1" / "pyproject.toml").is_file()


def build_environment(tmp_path: Path, **variables) -> dict:
    """The environment build.yml gives release.sh, rendered by ansible-playbook from the task itself."""
    tasks = yaml.safe_load((ROOT / "roles" / "deploy" / "tasks" / "build.yml").read_text())
    steps = [t for block in tasks for t in block.get("block", [block])]
    (task,) = [t for t in steps if "RELEASE_EXTRAS" in t.get("environment", {})]
    play = [{"name": "Render", "hosts": "localhost", "gather_facts": False,
             "tasks": [{"name": "Show", "ansible.builtin.debug": {"msg": "ENV={{ __env | to_json }}"},
                        "vars": {"__env": task["environment"]}}]}]  # fmt: skip
    out = helpers.playbook_on_localhost(tmp_path, yaml.safe_dump(play), variables)
    assert out.returncode == 0, out.stdout + out.stderr
    (line,) = [line for line in out.stdout.splitlines() if '"msg": "ENV=' in line]
    return json.loads(json.loads(line.split('"msg": ', 1)[1]).removeprefix("ENV="))


def test_two_extra_requirements_reach_pip_as_two(tmp_path, wheels):
    """app_extra_requirements as build.yml passes them (django-ca's psycopg and Gunicorn): each installed."""
    extra = {"app_extra_requirements": ["winonly==1.0", "devtool==1.0"], "app_install_extras": []}
    extra["deploy_strategy"] = "git"
    env = {key: str(value) for key, value in build_environment(tmp_path, **extra).items()}
    assert env["RELEASE_EXTRA_REQUIREMENTS"] == "winonly==1.0 devtool==1.0"
    out = build(tmp_path, {"requirements.txt": "alpha==1.0\n"}, "requirements", wheels, env=env)
    assert out.returncode == 0, out.stderr
    assert installed(tmp_path) == {"alpha==1.0", "beta==2.0", "winonly==1.0", "devtool==1.0"}


def test_pyproject_without_pyproject_toml_is_refused_by_name(tmp_path, wheels):
    out = build(tmp_path, {"requirements.txt": "alpha\n"}, "pyproject", wheels)
    assert out.returncode != 0
    assert "app_installer pyproject: the release has no pyproject.toml" in out.stderr


def pipfile_lock(wheels: dict[str, Path], **extra: dict) -> str:
    default = {
        "alpha": {"version": "==1.0", "hashes": [sha(wheels["alpha"])]},
        "beta": {"version": "==2.0", "hashes": [sha(wheels["beta"])]},
        "winonly": {"version": "==1.0", "hashes": [sha(wheels["winonly"])], "markers": "sys_platform == 'win32'"},
        **extra,
    }
    develop = {"devtool": {"version": "==1.0", "hashes": [sha(wheels["devtool"])]}}
    return json.dumps({"_meta": {"pipfile-spec": 6}, "default": default, "develop": develop})


def test_pipenv_installs_the_default_section_pinned_by_hash(tmp_path, wheels):
    out = build(tmp_path, {"Pipfile.lock": pipfile_lock(wheels)}, "pipenv", wheels)
    assert out.returncode == 0, out.stderr
    # winonly's marker is false here; devtool is in develop.
    assert installed(tmp_path) == {"alpha==1.0", "beta==2.0"}


def test_pipenv_refuses_a_wheel_whose_hash_is_not_the_locked_one(tmp_path, wheels):
    lock = pipfile_lock(wheels, beta={"version": "==2.0", "hashes": ["sha256:" + "0" * 64]})
    out = build(tmp_path, {"Pipfile.lock": lock}, "pipenv", wheels)
    assert out.returncode != 0
    assert "THESE PACKAGES DO NOT MATCH THE HASHES" in out.stderr


def test_pipenv_refuses_a_git_entry_naming_it(tmp_path, wheels):
    lock = pipfile_lock(wheels, mylib={"git": "https://example.invalid/mylib.git", "ref": "abc"})
    out = build(tmp_path, {"Pipfile.lock": lock}, "pipenv", wheels)
    assert out.returncode != 0
    assert "app_installer pipenv: mylib is a git entry in Pipfile.lock" in out.stderr


def poetry_package(wheels: dict[str, Path], name: str, version: str, extra: str = "") -> str:
    return (
        f'[[package]]\nname = "{name}"\nversion = "{version}"\noptional = false\npython-versions = "*"\n'
        f'files = [{{file = "{wheels[name].name}", hash = "{sha(wheels[name])}"}}]\n{extra}\n'
    )


def test_poetry_lock_20_installs_the_main_dependencies_walked_from_pyproject(tmp_path, wheels):
    lock = (
        poetry_package(
            wheels,
            "alpha",
            "1.0",
            '[package.dependencies]\nbeta = ">=2"\n'
            'winonly = {version = "*", markers = "sys_platform == \\"win32\\""}\n',
        )
        + poetry_package(wheels, "beta", "2.0")
        + poetry_package(wheels, "winonly", "1.0")
        + poetry_package(wheels, "devtool", "1.0")
        + '[metadata]\nlock-version = "2.0"\npython-versions = "^3.11"\ncontent-hash = "x"\n'
    )
    pyproject = (
        '[tool.poetry]\nname = "journal"\nversion = "1"\n'
        '[tool.poetry.dependencies]\npython = "^3.11"\nalpha = "^1.0"\n'
        '[tool.poetry.group.dev.dependencies]\ndevtool = "*"\n'
    )
    out = build(tmp_path, {"poetry.lock": lock, "pyproject.toml": pyproject}, "poetry", wheels)
    assert out.returncode == 0, out.stderr
    assert installed(tmp_path) == {"alpha==1.0", "beta==2.0"}


def test_poetry_2_lock_takes_the_main_group_and_its_markers(tmp_path, wheels):
    lock = (
        poetry_package(wheels, "alpha", "1.0", 'groups = ["main"]\n[package.dependencies]\nbeta = ">=2"\n')
        + poetry_package(wheels, "beta", "2.0", 'groups = ["main"]\n')
        + poetry_package(wheels, "winonly", "1.0", 'groups = ["main"]\nmarkers = "sys_platform == \\"win32\\""\n')
        + poetry_package(wheels, "devtool", "1.0", 'groups = ["dev"]\n')
        + '[metadata]\nlock-version = "2.1"\npython-versions = ">=3.11"\ncontent-hash = "x"\n'
    )
    pyproject = '[project]\nname = "journal"\nversion = "1"\ndependencies = ["alpha>=1"]\n'
    out = build(tmp_path, {"poetry.lock": lock, "pyproject.toml": pyproject}, "poetry", wheels)
    assert out.returncode == 0, out.stderr
    assert installed(tmp_path) == {"alpha==1.0", "beta==2.0"}


def test_poetry_refuses_a_dependency_missing_from_the_lock(tmp_path, wheels):
    lock = poetry_package(wheels, "beta", "2.0") + '[metadata]\nlock-version = "2.0"\ncontent-hash = "x"\n'
    pyproject = '[tool.poetry.dependencies]\npython = "^3.11"\nalpha = "^1.0"\n'
    out = build(tmp_path, {"poetry.lock": lock, "pyproject.toml": pyproject}, "poetry", wheels)
    assert out.returncode != 0
    assert "app_installer poetry: alpha is a dependency but not in poetry.lock" in out.stderr
