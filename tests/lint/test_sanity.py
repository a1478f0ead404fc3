"""The collection as Ansible tooling judges it: ansible-test sanity, antsibull-docs, antsibull-changelog.

ansible-test sanity runs on what ships: the artifact `ansible-galaxy collection build` makes
(galaxy.yml's manifest), unpacked under ansible_collections/opsbook/webstack, plus tests/config.yml.
The repository's tests, Molecule scenarios, benchmarks, sample app and lab inventories (the
directory symlinks ansible-test reports) do not ship and are held to ruff and yamllint by
test_lint.py instead. No ignore file (ansible-lint's sanity rule refuses most entries).
Offline: ansible-test's --venv downloads get-pip.py, so a stand-in that bootstraps pip with the
venv's own ensurepip is put where ansible-test caches it (its HOME is $OPSBOOK_CACHE/ansible-test,
which keeps its venvs between runs); the linters ansible-test pins come from PyPI.
docs/development.md has the details and the commands.

`python tests/lint/test_sanity.py --write-changelog` renders CHANGELOG.md from changelogs/.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CACHE = Path(os.environ.get("OPSBOOK_CACHE", Path.home() / ".cache" / "opsbook"))
GET_PIP = '''"""Stand-in for get-pip.py (tests/lint/test_sanity.py): pip from the venv's own ensurepip."""
import subprocess
import sys

# In a child process: ensurepip sets PIP_CONFIG_FILE=/dev/null in its own process's environment.
subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade"], stdout=subprocess.DEVNULL)
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install", "--quiet", *args]))
'''
CHANGELOG_NOTE = (
    "<!-- Rendered by antsibull-changelog from changelogs/: add a fragment to changelogs/fragments/ and run\n"
    "     `python tests/lint/test_sanity.py --write-changelog`; never edit this file by hand. -->\n"
)
UNRELEASED_NOTE = (
    "> {version} is not released yet: this is what `antsibull-changelog release` will make of\n"
    "> changelogs/fragments/ (docs/development.md#changelog).\n\n"
)


def run(*argv, cwd: Path = ROOT, env: dict | None = None, timeout: float = 1500) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(a) for a in argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "ANSIBLE_NOCOLOR": "1", "NO_COLOR": "1", **(env or {})},
    )


def shipped_collection(dest: Path) -> Path:
    """The built artifact unpacked as ansible_collections/opsbook/webstack, with tests/config.yml (and tests/sanity)."""
    built = run(BIN / "ansible-galaxy", "collection", "build", "--force", "--output-path", dest, ROOT)
    assert built.returncode == 0, built.stdout + built.stderr
    tree = dest / "ansible_collections" / "opsbook" / "webstack"
    tree.mkdir(parents=True)
    (artifact,) = dest.glob("opsbook-webstack-*.tar.gz")
    with tarfile.open(artifact) as tar:
        tar.extractall(tree, filter="data")
    (tree / "tests").mkdir(exist_ok=True)
    shutil.copy(ROOT / "tests" / "config.yml", tree / "tests" / "config.yml")
    if (ROOT / "tests" / "sanity").is_dir():
        shutil.copytree(ROOT / "tests" / "sanity", tree / "tests" / "sanity")
    return tree


def ansible_test_home() -> Path:
    """HOME for ansible-test: its venvs persist there, and the offline get-pip stand-in is in its cache."""
    source = (BIN.parent / "lib").glob("python3*/site-packages/ansible_test/_internal/python_requirements.py")
    pip_version = re.search(r"pip='([0-9.]+)'", next(source).read_text()).group(1)
    home = CACHE / "ansible-test"
    stand_in = home / ".ansible" / "test" / "cache" / f"get_pip_{pip_version.replace('.', '_')}.py"
    stand_in.parent.mkdir(parents=True, exist_ok=True)
    if not stand_in.is_file() or stand_in.read_text() != GET_PIP:
        stand_in.write_text(GET_PIP)
    return home


def test_ansible_test_sanity_on_what_ships(tmp_path):
    tree = shipped_collection(tmp_path)
    result = run(
        BIN / "ansible-test",
        "sanity",
        "--venv",
        "--python",
        f"{sys.version_info.major}.{sys.version_info.minor}",
        "--color",
        "no",
        cwd=tree,
        env={"HOME": str(ansible_test_home())},
    )
    out = result.stdout + result.stderr
    errors = "\n".join(line for line in out.splitlines() if "ERROR" in line)
    assert result.returncode == 0, errors[-8000:] or out[-8000:]
    assert 'Running sanity test "validate-modules"' in out and 'Running sanity test "pylint"' in out, out[-3000:]


def test_ignore_file_lines_are_explained():
    """Every line of a tests/sanity/ignore-*.txt (none today) has its reason in docs/development.md."""
    doc = (ROOT / "docs" / "development.md").read_text()
    for ignore in (ROOT / "tests" / "sanity").glob("ignore-*.txt"):
        for line in filter(None, ignore.read_text().splitlines()):
            assert f"`{line}`" in doc, f"{ignore.name}: {line!r} has no reason in docs/development.md"


def test_antsibull_docs_lint():
    result = run(BIN / "antsibull-docs", "lint-collection-docs", "--plugin-docs", ".")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]


def test_antsibull_changelog_lint():
    result = run(BIN / "antsibull-changelog", "lint")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]


def render_changelog(work: Path) -> str:
    """CHANGELOG.md as the next release will make it from changelogs/ (a release in a copy)."""
    tree = work / "ansible_collections" / "opsbook" / "webstack"
    tree.mkdir(parents=True)
    for name in ("changelogs", "plugins", "meta"):
        shutil.copytree(ROOT / name, tree / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "galaxy.yml", tree / "galaxy.yml")
    version = yaml.safe_load((ROOT / "galaxy.yml").read_text())["version"]
    releases = yaml.safe_load((ROOT / "changelogs" / "changelog.yaml").read_text()).get("releases") or {}
    if version in releases:  # galaxy.yml's version is out: render what changelog.yaml holds
        argv, note = ["generate"], CHANGELOG_NOTE
    else:  # not yet: render it as its release would (dated in the copy only)
        argv, note = ["release", "--version", version, "--date", "2000-01-01"], CHANGELOG_NOTE + UNRELEASED_NOTE
    rendered = run(BIN / "antsibull-changelog", *argv, cwd=tree, env={"ANSIBLE_COLLECTIONS_PATH": str(work)})
    assert rendered.returncode == 0, rendered.stdout + rendered.stderr
    return note.format(version=version) + (tree / "CHANGELOG.md").read_text()


def test_changelog_md_is_rendered_from_the_fragments(tmp_path):
    want = render_changelog(tmp_path)
    have = (ROOT / "CHANGELOG.md").read_text()
    assert have == want, "CHANGELOG.md differs from changelogs/: run python tests/lint/test_sanity.py --write-changelog"


if __name__ == "__main__":
    import tempfile

    if sys.argv[1:] != ["--write-changelog"]:
        sys.exit("usage: python tests/lint/test_sanity.py --write-changelog")
    with tempfile.TemporaryDirectory() as work:
        (ROOT / "CHANGELOG.md").write_text(render_changelog(Path(work)))
    print("CHANGELOG.md rendered from changelogs/")
