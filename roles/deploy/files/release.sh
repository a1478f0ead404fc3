# The release directory on a host, run by install.yml as `/bin/sh -ec <this file> release MODE ARGS...`
# (the text in argv, nothing copied to the host first):
#
#   build REL ARCHIVE REVISION RELEASE REQUIREMENTS WHEELS (as the app user)
#       the release from the code archive: code, REVISION, RELEASE, its virtualenv and the
#       requirements (offline from WHEELS when not ''); prints `built <uname -n>`.
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
    trap 'rm -f "$archive"' EXIT
    remove_unfinished "$rel"
    mkdir -m 0755 "$rel"
    : > "$rel/.installing"
    # REVISION, RELEASE and BUILT_ON are written after the code, so an archive holding those
    # names cannot replace them.
    tar -xzf "$archive" -C "$rel"
    printf '%s\n' "$revision" > "$rel/REVISION"
    printf '%s\n' "$release" > "$rel/RELEASE"
    uname -n > "$rel/BUILT_ON"
    chmod 0644 "$rel/REVISION" "$rel/RELEASE" "$rel/BUILT_ON"
    /usr/bin/python3 -m venv "$rel/venv"
    set --
    if [ -n "$wheels" ]; then set -- --no-index --find-links "$wheels"; fi
    "$rel/venv/bin/pip" install -q --disable-pip-version-check -r "$rel/$requirements" "$@"
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
