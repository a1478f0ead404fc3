# The release directory on a host, run by build.yml as `/bin/sh -ec <this file> release MODE ARGS...`
# (the text in argv, nothing copied to the host first):
#
#   build REL ARCHIVE REVISION RELEASE REQUIREMENTS WHEELS [INSTALLER [PYTHON [CONFIG...]]]
#       (as the app user) the release from the code archive: code, REVISION, RELEASE, its
#       virtualenv made with PYTHON (default /usr/bin/python3) and the app's dependencies
#       (offline from WHEELS when not '') installed by INSTALLER (default requirements):
#         requirements  pip install -r REQUIREMENTS
#         pyproject     pip install of the project (pyproject.toml: its build backend and its
#                       dependencies)
#         pipenv        Pipfile.lock's default packages, each pinned with the lock's hashes
#                       (pip --require-hashes; git, path and editable entries are refused)
#         poetry        poetry.lock's main packages, each pinned with the lock's hashes
#                       (pip --require-hashes --no-deps, then pip check)
#       From the environment: RELEASE_STRIP_COMPONENTS (deploy_archive_strip_components) leading
#       directories dropped from the archive's paths (a PyPI sdist's `<name>-<version>/`);
#       RELEASE_EXTRAS (app_install_extras, pyproject: the project installed as
#       `<release>[extra,...]`) and RELEASE_EXTRA_REQUIREMENTS (app_extra_requirements, apart by
#       spaces or lines: installed in the same pip run, e.g. the gunicorn an app does not depend on).
#       Each CONFIG (a path relative to the release) becomes a link to
#       <app_root>/shared/config/CONFIG (deploy's app_config_files, rendered there before the
#       build), replacing what the code has there; the links ship with the release.
#       Prints `built <uname -n>`.
#   pack REL (as the connecting user, who only reads the release)
#       REL packed into a new private directory (mktemp -d, 0700; the archive 0600); prints
#       `<archive path> <sha256>`. The controller fetches it and removes the directory.
#   unpack REL ARCHIVE SHA256 (as the app user)
#       a release packed on another host of the same platform, checked against SHA256 before
#       anything is unpacked, at the same path REL (virtualenvs are not relocatable; the path
#       is app_root/releases/<id> on every host); prints `unpacked <uname -n>`.
#
# build and unpack remove ARCHIVE whatever happens (trap), and mark REL unfinished with
# `.installing` until it is complete: an install cut short (controller killed) leaves it,
# rollback.yml never goes back to such a release, and the next build or unpack (under the
# deploy lock, so no other run is installing) removes it. The release records the host that
# built it in BUILT_ON (`uname -n` there), shipped with it.
# pipenv and poetry (build): the lock's packages as pip requirements, one a line, each pinned
# to the lock's version with every hash the lock records, so pip --require-hashes installs
# exactly the locked files. Pipfile.lock: its default section, markers kept. poetry.lock: the
# main group (Poetry 2's groups and markers; older locks: the graph walked from pyproject's
# dependencies, optional ones only through the extras asked for, each package keeping the
# markers of the edges that reach it). What cannot be pinned by hash (git, path, editable) is
# refused, naming the package. Run by /usr/bin/python3 (tomllib: Python 3.11 or newer).
LOCK_TO_REQUIREMENTS='
import json, os, re, sys
kind, rel = sys.argv[1], sys.argv[2]

def fail(msg):
    sys.exit("app_installer %s: %s" % (kind, msg))

def norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()

def line(name, version, extras, marker, hashes):
    extra = "[%s]" % ",".join(extras) if extras else ""
    when = " ; " + marker if marker else ""
    return name + extra + "==" + version + when + "".join(" --hash=" + h for h in hashes)

out = []
if kind == "pipenv":
    path = os.path.join(rel, "Pipfile.lock")
    if not os.path.isfile(path):
        fail("the release has no Pipfile.lock (pipenv lock writes it; commit it)")
    with open(path) as f:
        lock = json.load(f)
    for name, entry in sorted(lock.get("default", {}).items()):
        for key in ("git", "path", "file", "editable"):
            if key in entry:
                fail("%s is a %s entry in Pipfile.lock, which cannot be pinned by hash" % (name, key))
        if not str(entry.get("version", "")).startswith("==") or not entry.get("hashes"):
            fail("%s has no ==version with hashes in Pipfile.lock" % name)
        out.append(line(name, entry["version"][2:], entry.get("extras"), entry.get("markers"), entry["hashes"]))
else:
    try:
        import tomllib
    except ImportError:
        fail("reading poetry.lock needs Python 3.11 or newer as /usr/bin/python3 on the build host")
    path = os.path.join(rel, "poetry.lock")
    if not os.path.isfile(path):
        fail("the release has no poetry.lock (poetry lock writes it; commit it)")
    with open(path, "rb") as f:
        lock = tomllib.load(f)
    project = {}
    if os.path.isfile(os.path.join(rel, "pyproject.toml")):
        with open(os.path.join(rel, "pyproject.toml"), "rb") as f:
            project = tomllib.load(f)
    packages = {norm(p["name"]): p for p in lock.get("package", [])}
    old_files = {norm(k): v for k, v in lock.get("metadata", {}).get("files", {}).items()}
    chosen = {}
    if any("groups" in p for p in packages.values()):
        for name, p in packages.items():
            if "main" in p.get("groups", []):
                marker = p.get("markers")
                chosen[name] = {marker.get("main") if isinstance(marker, dict) else marker}
    else:
        todo = []
        for name, spec in project.get("tool", {}).get("poetry", {}).get("dependencies", {}).items():
            spec = spec if isinstance(spec, dict) else {}
            if norm(name) != "python" and not spec.get("optional"):
                todo.append((norm(name), tuple(spec.get("extras", [])), spec.get("markers")))
        for req in project.get("project", {}).get("dependencies", []):
            m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?[^;]*(?:;(.*))?$", req)
            extras = tuple(e.strip() for e in (m.group(2) or "").split(",") if e.strip())
            todo.append((norm(m.group(1)), extras, (m.group(3) or "").strip() or None))
        if not todo:
            fail("pyproject.toml declares no dependencies ([tool.poetry.dependencies] or [project] dependencies)")
        seen = set()
        while todo:
            name, extras, marker = todo.pop()
            if (name, extras, marker) in seen:
                continue
            seen.add((name, extras, marker))
            p = packages.get(name)
            if p is None:
                fail("%s is a dependency but not in poetry.lock: run poetry lock and commit it" % name)
            chosen.setdefault(name, set()).add(marker)
            wanted = set()
            for extra in extras:
                for dep in p.get("extras", {}).get(extra, []):
                    wanted.add(norm(re.split(r"[\s(\[<>=!~;]", dep.strip(), maxsplit=1)[0]))
            for dep, specs in p.get("dependencies", {}).items():
                for spec in specs if isinstance(specs, list) else [specs]:
                    spec = spec if isinstance(spec, dict) else {}
                    if spec.get("optional") and norm(dep) not in wanted:
                        continue
                    edge = spec.get("markers")
                    child = marker if not edge else edge if not marker or len(marker) > 1000 else "(%s) and (%s)" % (marker, edge)
                    todo.append((norm(dep), tuple(spec.get("extras", [])), child))
    for name in sorted(chosen):
        p = packages[name]
        source = p.get("source", {}).get("type", "")
        if source in ("git", "directory", "file") or p.get("develop"):
            fail("%s comes from a %s source in poetry.lock, which cannot be pinned by hash" % (name, source or "develop"))
        hashes = [f["hash"] for f in p.get("files") or old_files.get(name, [])]
        if not hashes:
            fail("%s has no file hashes in poetry.lock" % name)
        markers = chosen[name]
        marker = None if None in markers else " or ".join("(%s)" % m for m in sorted(markers))
        out.append(line(p["name"], p["version"], (), marker, hashes))
print("\n".join(out))
'

mode=$1
shift

# Releases an install cut short left (`.installing`), removed. The install that left one may
# still run: a killed controller ends the connection, not always the command (pip went on
# writing under docker exec). What runs from inside that release is stopped first.
remove_unfinished() {
  for mark in "$(dirname "$1")"/*/.installing; do
    [ -e "$mark" ] || continue
    old=$(dirname "$mark")
    /usr/bin/python3 -c '
import os, signal, sys
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        with open("/proc/%s/cmdline" % pid, "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        continue
    if int(pid) != os.getpid() and any(a.startswith(sys.argv[1].encode()) for a in argv):
        try:
            os.kill(int(pid), signal.SIGKILL)
        except OSError:
            pass
' "$old/"
    rm -rf "$old" || { sleep 1; rm -rf "$old"; }
  done
}

case $mode in
  build)
    rel=$1 archive=$2 revision=$3 release=$4 requirements=$5 wheels=$6
    installer=${7:-requirements} python=${8:-/usr/bin/python3}
    shift 6
    shift $(($# < 2 ? $# : 2))
    trap 'rm -f "$archive"' EXIT
    remove_unfinished "$rel"
    mkdir -m 0755 "$rel"
    : > "$rel/.installing"
    # REVISION, RELEASE and BUILT_ON are written after the code, so an archive holding those
    # names cannot replace them.
    tar -xzf "$archive" -C "$rel" --strip-components="${RELEASE_STRIP_COMPONENTS:-0}"
    printf '%s\n' "$revision" > "$rel/REVISION"
    printf '%s\n' "$release" > "$rel/RELEASE"
    uname -n > "$rel/BUILT_ON"
    chmod 0644 "$rel/REVISION" "$rel/RELEASE" "$rel/BUILT_ON"
    shared="$(dirname "$(dirname "$rel")")/shared/config"
    for dest in "$@"; do
      mkdir -p "$(dirname "$rel/$dest")"
      rm -rf "${rel:?}/$dest"
      ln -s "$shared/$dest" "$rel/$dest"
    done
    [ -x "$python" ] || { echo "the interpreter $python (app_python) is not on $(uname -n): run playbooks/provision.yml first" >&2; exit 1; }
    # What the installer reads, checked (and a lock turned into pinned requirements) before
    # the virtualenv is made: a refusal costs no venv.
    case $installer in
      requirements) ;;
      pyproject) [ -f "$rel/pyproject.toml" ] || { echo "app_installer pyproject: the release has no pyproject.toml" >&2; exit 1; } ;;
      pipenv|poetry) /usr/bin/python3 -c "$LOCK_TO_REQUIREMENTS" "$installer" "$rel" > "$rel/.locked-requirements.txt" ;;
      *) echo "release.sh: unknown installer '$installer' (requirements, pyproject, pipenv or poetry)" >&2; exit 2 ;;
    esac
    "$python" -m venv "$rel/venv"
    set -- -q --disable-pip-version-check
    if [ -n "$wheels" ]; then set -- "$@" --no-index --find-links "$wheels"; fi
    # The extra requirements split on spaces or new lines (none holds either: validate's
    # app_problems), without globbing (gunicorn[gevent]); pipenv and poetry install only what
    # their lock pins.
    case $installer in requirements|pyproject)
      set -f
      # shellcheck disable=SC2086
      set -- "$@" ${RELEASE_EXTRA_REQUIREMENTS:-}
      set +f
    esac
    case $installer in
      requirements)
        "$rel/venv/bin/pip" install "$@" -r "$rel/$requirements"
        ;;
      pyproject)
        "$rel/venv/bin/pip" install "$@" "$rel${RELEASE_EXTRAS:+[$RELEASE_EXTRAS]}"
        ;;
      pipenv|poetry)
        if [ "$installer" = poetry ]; then set -- "$@" --no-deps; fi
        "$rel/venv/bin/pip" install "$@" --require-hashes -r "$rel/.locked-requirements.txt"
        if [ "$installer" = poetry ]; then "$rel/venv/bin/pip" check --disable-pip-version-check; fi
        ;;
    esac
    rm "$rel/.installing"
    echo "built $(uname -n)"
    ;;
  pack)
    rel=$1
    [ -d "$rel" ] && [ ! -e "$rel/.installing" ] || { echo "$rel is not a finished release" >&2; exit 1; }
    dir=$(mktemp -d "${TMPDIR:-/tmp}/opsbook-release.XXXXXX")
    umask 077
    # gzip -1: the archive is made and unpacked once per run; speed over size.
    tar -cf "$dir/release.tar" -C "$rel" .
    gzip -1 "$dir/release.tar"
    sum=$(sha256sum "$dir/release.tar.gz")
    echo "$dir/release.tar.gz ${sum%% *}"
    ;;
  unpack)
    rel=$1 archive=$2 sum=$3
    trap 'rm -f "$archive"' EXIT
    got=$(sha256sum "$archive")
    if [ "${got%% *}" != "$sum" ]; then
      echo "the release archive $archive has sha256 ${got%% *}, not $sum as packed on the build host: not unpacked" >&2
      exit 1
    fi
    remove_unfinished "$rel"
    mkdir -m 0755 "$rel"
    : > "$rel/.installing"
    tar -xzf "$archive" -C "$rel"
    [ -x "$rel/venv/bin/python" ] || { echo "the release archive $archive holds no virtualenv" >&2; exit 1; }
    rm "$rel/.installing"
    echo "unpacked $(uname -n)"
    ;;
  *)
    echo "release.sh: unknown mode '$mode' (build, pack or unpack)" >&2
    exit 2
    ;;
esac
