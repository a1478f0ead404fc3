"""The execution environment's requirements are read from the code, so the lists cannot rot.

meta/ee-requirements.txt (Python) and meta/ee-bindep.txt (system packages, bindep format) are
what ansible-builder installs into an execution environment for opsbook.webstack: it reads them
through meta/execution-environment.yml of the installed collection, and execution-environment.yml
at the top of the repository builds an image from them. This test derives both lists from the
code and requires each file to hold exactly that, no more and no less:

- Python: every import in plugins/**/*.py that is not the standard library, ansible or the
  collection itself (read with ast, mapped to its distribution by IMPORT_DISTRIBUTIONS), plus the
  libraries of other collections' modules that the roles run on the controller
  (CONTROLLER_MODULE_PYTHON).
- System: every program the roles run on the controller (tasks delegated to localhost, plays on
  localhost, the role scripts those tasks run), the programs the modules run (get_bin_path,
  shutil.which, an argv list), and ssh for the default connection; mapped to packages by
  PROGRAM_PACKAGES. Programs every base image has (coreutils, tar, ...) are ESSENTIAL_PROGRAMS.

A new third-party import, a new program on the controller or a new delegated module of another
collection fails here until both the table and the requirement file name it.
"""

from __future__ import annotations

import ast
import re
import shutil
import sys
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
EE_REQUIREMENTS = ROOT / "meta" / "ee-requirements.txt"
EE_BINDEP = ROOT / "meta" / "ee-bindep.txt"

# Import name -> distribution on PyPI. An alternative import (tried when the first is missing)
# maps to the distribution the EE installs instead.
IMPORT_DISTRIBUTIONS = {
    "yaml": "PyYAML",
    "psycopg": "psycopg",
    "psycopg2": "psycopg",  # pg_dump_verify falls back to psycopg2 when psycopg 3 is missing
    "redis": "redis",
    "celery": "celery",
    "kombu": "kombu",
    "rq": "rq",
    "jinja2": "Jinja2",  # play_host_vars (an undefined value from hostvars); ansible-core depends on it too
}

# Modules of other collections that the roles run on the controller -> the Python distributions
# they need there. ansible.builtin modules need nothing beyond ansible-core.
CONTROLLER_MODULE_PYTHON = {
    "community.crypto.x509_certificate_info": ["cryptography"],
    # app_runtime compose builds and exports the release's image on the controller (Docker API over requests).
    "community.docker.docker_image": ["requests"],
    "community.docker.docker_image_export": ["requests"],
    # ... and finds and prunes the app's older release images there.
    "community.docker.docker_host_info": ["requests"],
    "community.docker.docker_image_remove": ["requests"],
    # ... and pushes it to the registry that app_image names.
    "community.docker.docker_image_push": ["requests"],
}

# Programs -> (Debian package, RPM package).
PROGRAM_PACKAGES = {
    "git": ("git", "git"),
    "ssh": ("openssh-client", "openssh-clients"),
    "pg_dump": ("postgresql-client", "postgresql"),
    "pg_restore": ("postgresql-client", "postgresql"),
    "psql": ("postgresql-client", "postgresql"),
    "age": ("age", "age"),
}

# In every base image (coreutils, util-linux, tar, findutils, the shells), or only ever run on
# the managed hosts: no requirement line.
ESSENTIAL_PROGRAMS = {
    "sh", "bash", "tar", "gzip", "find", "flock", "chmod", "cut", "id", "ls", "mkdir", "mktemp", "mv",
    "rm", "sha256sum", "stat", "sort", "cat", "timeout", "test", "printf", "echo", "date", "sed", "awk",
    "grep", "head", "tail", "tr", "wc", "xargs", "true", "false", "basename", "dirname", "df", "readlink",
    "ln", "cp", "touch", "env", "kill", "sleep", "install",
}  # fmt: skip
# deploy_activate restarts the host's own units: it manages the host it runs on, never the EE.
# pg_container (app_db_compose_service) runs docker exec beside the database's engine, on its host.
TARGET_ONLY_PROGRAMS = {"systemctl", "docker"}

SHELL_WORDS = {
    "set", "exit", "if", "then", "else", "elif", "fi", "for", "do", "done", "while", "case", "esac", "in",
    "return", "local", "export", "shift", "trap", "read", "cd", "exec", "unset", "eval", "wait", "pwd",
}  # fmt: skip


def python_files() -> list[Path]:
    return sorted(p for p in (ROOT / "plugins").rglob("*.py") if "__pycache__" not in p.parts)


def third_party_imports(path: Path) -> set[str]:
    """Top-level names imported in a file that are not stdlib, ansible or the collection itself."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return {
        n
        for n in names
        if n not in sys.stdlib_module_names and n not in {"ansible", "ansible_collections", "__future__"}
    }


def module_programs(path: Path) -> set[str]:
    """Programs a plugin runs: get_bin_path/_pg_bin/which("x"), and argv lists starting with a literal."""
    programs = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call):
            continue
        func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        first = node.args[0] if node.args else None
        if func in {"get_bin_path", "_pg_bin", "which"} and isinstance(first, ast.Constant):
            programs.add(first.value)
        runs = func in {"run", "Popen", "run_command", "check_output", "check_call"}
        if runs and isinstance(first, ast.List) and first.elts and isinstance(first.elts[0], ast.Constant):
            programs.add(str(first.elts[0].value))
    return programs


def _tasks(node, inherited_local: bool = False):
    """Every task (dict with a module key) under a task list, with whether it runs on the controller."""
    if isinstance(node, list):
        for item in node:
            yield from _tasks(item, inherited_local)
    elif isinstance(node, dict):
        local = inherited_local or node.get("delegate_to") in {"localhost", "127.0.0.1"}
        local = local or node.get("connection") == "local"
        blocks = [node[k] for k in ("block", "rescue", "always") if k in node]
        if blocks:
            for b in blocks:
                yield from _tasks(b, local)
        else:
            yield node, local


def _role_task_files() -> list[Path]:
    return sorted((ROOT / "roles").glob("*/tasks/**/*.yml"))


def controller_tasks() -> list[tuple[Path, dict]]:
    """Tasks run on the controller: delegated to localhost in the roles, or in plays on localhost.

    A role included from a localhost play (the report entry point of maintenance) runs there
    whole, so its task file counts as controller-side.
    """
    found = []
    local_role_files = set()
    for playbook in sorted((ROOT / "playbooks").glob("*.yml")):
        for play in yaml.safe_load(playbook.read_text(encoding="utf-8")) or []:
            if not isinstance(play, dict) or play.get("hosts") not in {"localhost", "127.0.0.1"}:
                continue
            for task, _ in _tasks(play.get("tasks", []) + play.get("pre_tasks", []), True):
                for key in ("ansible.builtin.import_role", "ansible.builtin.include_role"):
                    if key in task:
                        role = task[key]["name"].split(".")[-1]
                        local_role_files.add(
                            ROOT / "roles" / role / "tasks" / f"{task[key].get('tasks_from', 'main')}.yml"
                        )
                found.append((playbook, task))
    for path in _role_task_files():
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or []
        for task, local in _tasks(data, path in local_role_files):
            if local:
                found.append((path, task))
    return found


def _module_name(task: dict) -> str:
    skip = {"name", "when", "vars", "register", "delegate_to", "run_once", "become", "loop", "loop_control",
            "changed_when", "failed_when", "check_mode", "tags", "no_log", "until", "retries", "delay",
            "environment", "notify", "args", "ignore_errors", "connection", "listen", "throttle"}  # fmt: skip
    modules = [k for k in task if k not in skip]
    return modules[0] if modules else ""


_COMMAND_POSITION = re.compile(
    r"(?:^|[|;&(`]|\$\(|\b(?:then|do|else|if|while|until|exec|time)\b|!)\s*"  # where a command starts
    r"(?:[A-Za-z_][A-Za-z0-9_]*=\S*\s+)*"  # VAR=value prefixes
    r"([A-Za-z_][A-Za-z0-9_.+-]*)(?![\w)=.+-])",  # the command; `word)` is a case pattern
    re.MULTILINE,
)


def _script_words(text: str) -> set[str]:
    """The words in command position of a shell script."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    functions = set(re.findall(r"^\s*([A-Za-z_]\w*)\s*\(\)", text, re.MULTILINE))  # the script's own
    return set(_COMMAND_POSITION.findall("\n".join(lines))) - functions


def _command_words(args) -> set[str]:
    """Programs a command/shell/raw task runs: argv[0] and the scripts it hands to a shell."""
    if isinstance(args, dict) and "argv" in args:
        argv = args["argv"]
        if not isinstance(argv, list):  # an expression building the list: read its literal strings
            argv = re.findall(r"'([^']*)'", argv)
        words = {Path(str(argv[0])).name} if argv else set()
        if words & {"sh", "bash"} and len(argv) > 2 and argv[1] == "-c":
            words |= _script_words(str(argv[2]))
        return words
    text = args.get("cmd", args.get("_raw_params", "")) if isinstance(args, dict) else str(args)
    return _script_words(text)


def controller_programs() -> tuple[set[str], set[str]]:
    """(programs, other collections' modules) the controller-side tasks run."""
    programs: set[str] = set()
    modules: set[str] = set()
    for path, task in controller_tasks():
        module = _module_name(task)
        if module in {"ansible.builtin.command", "ansible.builtin.shell", "ansible.builtin.raw"}:
            args = task[module]
            text = yaml.safe_dump(args) if isinstance(args, dict) else str(args)
            words = _command_words(args)
            for script in re.findall(r"\{\{ role_path \}\}/files/([\w.-]+)", text):
                words |= _script_words((path.parents[1] / "files" / script).read_text(encoding="utf-8"))
            programs |= {w for w in words if w not in SHELL_WORDS and _is_program(w)}
        elif not module.startswith(("ansible.builtin.", "ansible.legacy.")) and "." in module:
            modules.add(module)
    return programs, modules


def _is_program(word: str) -> bool:
    return word in PROGRAM_PACKAGES or word in ESSENTIAL_PROGRAMS or shutil.which(word) is not None


def read_requirements() -> set[str]:
    lines = [line.split("#", 1)[0].strip() for line in EE_REQUIREMENTS.read_text(encoding="utf-8").splitlines()]
    return {canonicalize_name(Requirement(line).name) for line in lines if line}


def read_bindep() -> set[tuple[str, str]]:
    """{(package, platform)} from bindep lines `name [platform:dpkg ...]`."""
    found = set()
    for raw in EE_BINDEP.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9.+_-]+)\s*(?:\[([^\]]*)\])?", line)
        assert match, f"meta/ee-bindep.txt: cannot read {raw!r}"
        platforms = re.findall(r"platform:(\w+)", match.group(2) or "")
        assert platforms, f"meta/ee-bindep.txt: {raw!r} names no platform (dpkg and/or rpm)"
        found |= {(match.group(1), p) for p in platforms}
    return found


def expected_python() -> dict[str, list[str]]:
    """{distribution: [why]} from the code."""
    need: dict[str, list[str]] = {}
    unmapped = []
    for path in python_files():
        for name in sorted(third_party_imports(path)):
            if name not in IMPORT_DISTRIBUTIONS:
                unmapped.append(f"{path.relative_to(ROOT)} imports {name}")
                continue
            need.setdefault(canonicalize_name(IMPORT_DISTRIBUTIONS[name]), []).append(str(path.relative_to(ROOT)))
    _, modules = controller_programs()
    for module in sorted(modules):
        if module not in CONTROLLER_MODULE_PYTHON:
            unmapped.append(f"the roles run {module} on the controller")
            continue
        for dist in CONTROLLER_MODULE_PYTHON[module]:
            need.setdefault(canonicalize_name(dist), []).append(module)
    assert not unmapped, (
        "Not mapped to a distribution (add it to IMPORT_DISTRIBUTIONS or CONTROLLER_MODULE_PYTHON in this test "
        "and to meta/ee-requirements.txt): " + "; ".join(unmapped)
    )
    return need


def expected_system() -> dict[str, set[str]]:
    """{program: {why}} that needs a package."""
    need: dict[str, set[str]] = {"ssh": {"the ssh connection plugin (Ansible's default connection)"}}
    for path in python_files():
        for program in module_programs(path):
            need.setdefault(program, set()).add(str(path.relative_to(ROOT)))
    programs, _ = controller_programs()
    for program in programs:
        need.setdefault(program, set()).add("a controller-side task of the roles")
    unknown = sorted(
        p for p in need if p not in PROGRAM_PACKAGES and p not in ESSENTIAL_PROGRAMS | TARGET_ONLY_PROGRAMS
    )
    assert not unknown, (
        f"Programs run by the collection with no package known: {unknown} ({[sorted(need[p]) for p in unknown]}); "
        "add them to PROGRAM_PACKAGES (and meta/ee-bindep.txt) or to ESSENTIAL_PROGRAMS with a reason"
    )
    return {p: w for p, w in need.items() if p in PROGRAM_PACKAGES}


def test_python_requirements_are_exactly_what_the_code_imports():
    need = expected_python()
    listed = read_requirements()
    missing = sorted(set(need) - listed)
    extra = sorted(listed - set(need))
    assert not missing, f"meta/ee-requirements.txt lacks {missing}, needed by {[need[m] for m in missing]}"
    assert not extra, f"meta/ee-requirements.txt lists {extra}, which no plugin imports and no controller task needs"


def test_system_requirements_are_exactly_what_the_code_runs():
    need = expected_system()
    wanted = {(PROGRAM_PACKAGES[p][0], "dpkg") for p in need} | {(PROGRAM_PACKAGES[p][1], "rpm") for p in need}
    listed = read_bindep()
    assert not wanted - listed, f"meta/ee-bindep.txt lacks {sorted(wanted - listed)} (programs: {sorted(need)})"
    assert not listed - wanted, f"meta/ee-bindep.txt lists {sorted(listed - wanted)}, which no code runs"


def test_the_derivation_sees_what_the_code_does():
    """Guards the readers: known uses must be found, or the checks above would pass vacuously."""
    imports = {name for path in python_files() for name in third_party_imports(path)}
    assert {"psycopg", "redis", "celery", "kombu", "rq", "yaml"} <= imports
    programs, modules = controller_programs()
    assert "git" in programs  # the deploy role resolves refs and exports releases with git on the controller
    assert "community.crypto.x509_certificate_info" in modules
    assert {"pg_restore", "psql"} <= {p for path in python_files() for p in module_programs(path)}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import boto3\nfrom os import path\n", {"boto3"}),
        ("from ansible.module_utils.basic import AnsibleModule\nimport json\n", set()),
        ("try:\n    import docker.errors\nexcept ImportError:\n    pass\n", {"docker"}),
    ],
)
def test_import_reader(tmp_path, source, expected):
    path = tmp_path / "m.py"
    path.write_text(source)
    assert third_party_imports(path) == expected


def test_execution_environment_uses_these_files():
    ee = yaml.safe_load((ROOT / "execution-environment.yml").read_text(encoding="utf-8"))
    assert ee["version"] == 3
    deps = ee["dependencies"]
    assert deps["python"] == "meta/ee-requirements.txt"
    assert deps["system"] == "meta/ee-bindep.txt"
    assert deps["galaxy"] == "requirements.yml"
    pins = dict(
        line.split("#")[0].strip().split("==")
        for line in (ROOT / "requirements" / "controller.txt").read_text(encoding="utf-8").splitlines()
        if "==" in line.split("#")[0]
    )
    for key, dist in (("ansible_core", "ansible-core"), ("ansible_runner", "ansible-runner")):
        assert deps[key]["package_pip"] == f"{dist}=={pins[dist]}", f"{key} differs from requirements/controller.txt"
    meta = yaml.safe_load((ROOT / "meta" / "execution-environment.yml").read_text(encoding="utf-8"))
    assert meta == {
        "version": 1,
        "dependencies": {"python": "meta/ee-requirements.txt", "system": "meta/ee-bindep.txt"},
    }
