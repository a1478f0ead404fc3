# The controller's private archive cache, run as `sh <this file> COMMAND ARGS...` by
# controller.yml. The code and wheelhouse archives are cached between runs in a directory
# of the user running the playbook, never in a shared TMPDIR where another local user could
# plant a file of the expected name; each archive's sha256 is recorded beside it when it is
# built (FILE.sha256) and checked before it is reused.
#
#   dir DIR              create DIR (0700) or check it: the runner's, writable by no one
#                        else, under parents no one else can change (exit 6 naming why not).
#   release REPO REV DIR APP WHEELHOUSE
#                        the code archive DIR/opsbook-APP-REV.tar.gz (`git archive`), then
#                        the wheelhouse's when WHEELHOUSE is not empty; prints
#                        `exported|kept <wheelhouse fingerprint|none> [created]`.
#   pack WHEELHOUSE DIR  the wheelhouse in one archive named by its listing; prints the
#                        fingerprint, and `created` when it was packed now. Its last member
#                        is .complete: a host that has it unpacked all of it.
#
# Archives neither built nor reused for 14 days (OPSBOOK_CACHE_DAYS) are removed.
# An archive is reused only when it matches the sha256 recorded when it was built; one that
# does not fails the run naming it (exit 4). Both commands hold DIR/.lock while they check
# and build, and write under a temporary name then rename, so a run beside this one never
# reads half of an archive or a record that does not belong to it.
set -eu

# Refuse a directory someone else could write to, or swap: it and every parent must belong
# to the runner or root and be writable by no one else (a sticky parent such as /tmp is
# fine: others cannot rename what is ours in it).
check_dir() {
  target=$1 cache=${2:-$1} me=$(id -u)
  if [ -L "$target" ] || [ ! -d "$target" ]; then
    echo "Refusing the archive cache $cache: it is not a directory (a symbolic link or a file is in the way). Remove it; the next run creates it." >&2
    exit 6
  fi
  physical=$(cd "$target" && pwd -P)
  set -- "$(stat -c '%u %a' "$physical")"
  owner=${1%% *} mode=${1#* }
  if [ "$owner" != "$me" ]; then
    echo "Refusing the archive cache $cache: $physical is owned by uid $owner, not by the user running the playbook (uid $me). Remove it; the next run creates it." >&2
    exit 6
  fi
  d=$physical
  while :; do
    set -- "$(stat -c '%u %a' "$d")"
    owner=${1%% *} mode=${1#* }
    if [ "$owner" != "$me" ] && [ "$owner" != 0 ]; then
      echo "Refusing the archive cache $cache: $d is owned by uid $owner (not root, not the user running the playbook, uid $me), who could replace the cache." >&2
      exit 6
    fi
    if [ $((0$mode & 022)) -ne 0 ] && { [ "$d" = "$physical" ] || [ $((0$mode & 01000)) -eq 0 ]; }; then
      echo "Refusing the archive cache $cache: $d is writable by its group or others (mode $mode), who could plant or replace an archive. Run chmod go-w $d, or set XDG_CACHE_HOME to a private directory." >&2
      exit 6
    fi
    [ "$d" = / ] && break
    d=$(dirname "$d")
  done
}

sum() {
  sha256sum < "$1" | cut -d' ' -f1
}

# 0: FILE matches FILE.sha256; 1: either is missing (build it); 4: they differ (refuse).
verify() {
  [ -f "$1" ] && [ -f "$1.sha256" ] || return 1
  recorded=$(cut -d' ' -f1 "$1.sha256")
  actual=$(sum "$1")
  if [ "$recorded" != "$actual" ]; then
    echo "The cached archive $1 does not match its recorded sha256 ($recorded, now $actual): it was changed after it was built, and is not used. Find out who could write to $(dirname "$1"), then remove the archive and its .sha256 to build it again." >&2
    return 4
  fi
}

# Record PART's sha256 as FILE.sha256, then rename PART to FILE (record first: a run that
# dies between the two leaves a record without an archive, which the next run rebuilds).
seal() {
  chmod 0600 "$1"
  record=$(mktemp "$2.sha256.part.XXXXXX")
  printf '%s  %s\n' "$(sum "$1")" "$(basename "$2")" > "$record"
  mv -f "$record" "$2.sha256"
  mv -f "$1" "$2"
}

# Archives (and their records, and parts a killed run left) not built or reused for
# OPSBOOK_CACHE_DAYS days (default 14) go: the cache is not a shared TMPDIR that a reboot
# empties. Called under the lock; a reuse touches what it reuses.
prune() {
  find "$1" -maxdepth 1 -type f -name 'opsbook-*' -mtime "+${OPSBOOK_CACHE_DAYS:-14}" -delete
}

lock() {
  exec 9>>"$1/.lock"
  if ! flock -w 600 9; then
    echo "Gave up after 600 s waiting for $1/.lock: another run on this controller holds it." >&2
    exit 5
  fi
}

# Prints `exported` or `kept`.
export_code() {
  repo=$1 rev=$2 archive="$3/opsbook-$4-$2.tar.gz" rc=0
  verify "$archive" || rc=$?
  case $rc in
  0)
    touch "$archive" "$archive.sha256"
    echo kept
    ;;
  1)
    part=$(mktemp "$archive.part.XXXXXX")
    git --git-dir "$repo" archive --format=tar.gz --output="$part" "$rev" || { rm -f "$part"; exit 1; }
    seal "$part" "$archive"
    echo exported
    ;;
  *) exit "$rc" ;;
  esac
}

# Prints the fingerprint, then `created` when packed now.
pack() {
  cd "$1"
  hash=$(ls -l --time-style=+%s -- *.whl | sha256sum | cut -c1-16)
  echo "$hash"
  dest="$2/opsbook-wheelhouse-$hash.v2.tar" rc=0
  verify "$dest" || rc=$?
  case $rc in
  0) touch "$dest" "$dest.sha256" ;;
  1)
    part=$(mktemp "$dest.part.XXXXXX")
    marks=$(mktemp -d)
    trap 'rm -rf "$part" "$marks"' EXIT
    : > "$marks/.complete"
    tar -cf "$part" -- *.whl
    tar -rf "$part" -C "$marks" .complete
    seal "$part" "$dest"
    echo created
    ;;
  *) exit "$rc" ;;
  esac
}

command=$1
shift
case $command in
dir)
  if [ ! -e "$1" ] && [ ! -L "$1" ]; then
    mkdir -p "$(dirname "$1")"
    check_dir "$(dirname "$1")" "$1"
    mkdir -m 0700 "$1" 2>/dev/null || [ -d "$1" ]
  fi
  check_dir "$1"
  ;;
release)
  check_dir "$3"
  lock "$3"
  prune "$3"
  archived=$(export_code "$1" "$2" "$3" "$4")
  hash=none created=
  if [ -n "$5" ]; then
    packed=$(pack "$5" "$3")
    set -- $packed
    hash=$1 created=${2:-}
  fi
  echo "$archived $hash $created"
  ;;
pack)
  check_dir "$2"
  lock "$2"
  prune "$2"
  pack "$1" "$2"
  ;;
*)
  echo "usage: sh pack_wheelhouse.sh dir DIR | release REPO REV DIR APP WHEELHOUSE | pack WHEELHOUSE DIR" >&2
  exit 2
  ;;
esac
