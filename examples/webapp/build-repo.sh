#!/usr/bin/env bash
# Build the journal sample application's git history as a bare repository.
#
#   examples/webapp/build-repo.sh DEST
#
# DEST is (re)created with tags v1..v5 and branch main (= v2):
#   v1  src/
#   v2  v1 + versions/v2   backward-compatible migration (nullable Article.summary)
#   v3  v2 + versions/v3   /health/ fails (database check reads a missing table)
#   v4  v2 + versions/v4   a migration that fails inside its transaction (not built on v3)
#   v5  v2 + versions/v5   an irreversible data migration (RunPython without reverse code)
#
# Authors, committers, dates and file modes are fixed, and the user's git
# configuration is ignored, so the commit ids are the same on every machine.
set -euo pipefail

usage() {
    echo "usage: $0 DEST" >&2
    echo "  creates (or recreates) a bare git repository at DEST with tags v1, v2, v3, v4, v5" >&2
    exit 2
}

[[ $# -eq 1 && -n "$1" ]] || usage
dest=$1
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# Never delete something that is not ours: only an empty directory or a bare repository.
if [[ -e "$dest" ]]; then
    if [[ -d "$dest" && -z "$(ls -A "$dest")" ]]; then
        :
    elif [[ -f "$dest/HEAD" && -d "$dest/objects" && -d "$dest/refs" ]]; then
        rm -rf "$dest"
    else
        echo "$0: refusing to replace $dest: it exists and is not an empty directory or a bare git repository" >&2
        exit 1
    fi
fi

# Reproducible git: no user or system configuration (signing, hooks, autocrlf), fixed identity.
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
export GIT_AUTHOR_NAME="opsbook" GIT_AUTHOR_EMAIL="opsbook@example.invalid"
export GIT_COMMITTER_NAME="opsbook" GIT_COMMITTER_EMAIL="opsbook@example.invalid"
export TZ=UTC LC_ALL=C

work=$(mktemp -d "${TMPDIR:-/tmp}/journal-repo.XXXXXX")
trap 'rm -rf "$work"' EXIT

git_() { git -C "$work/tree" "$@"; }

copy_tree() {
    # Runtime leftovers (bytecode, media, RELEASE) in src/ must not change the commits.
    tar -C "$1" --exclude=__pycache__ --exclude='*.pyc' --exclude=./RELEASE --exclude=./media \
        --exclude=./staticfiles --exclude=./logs --exclude='celerybeat-schedule*' -cf - . |
        tar -C "$work/tree" -xf -
}

commit() {
    local tag=$1 date=$2 message=$3
    # git records only the executable bit; set it explicitly so umask and checkout options do not matter.
    find "$work/tree" -path "$work/tree/.git" -prune -o -type f -exec chmod 0644 {} +
    chmod 0755 "$work/tree/manage.py"
    # Re-hash every file: an overlay file of the same size and mtime as the one it replaces
    # (VERSION "v2" -> "v3", copied within the same second) looks unchanged to git's stat cache.
    git_ rm -r --cached --quiet --ignore-unmatch .
    git_ add --all
    GIT_AUTHOR_DATE=$date GIT_COMMITTER_DATE=$date git_ commit --quiet --no-verify -m "$message"
    GIT_COMMITTER_DATE=$date git_ tag --annotate "$tag" -m "journal $tag"
}

mkdir "$work/tree"
git init --quiet --initial-branch=main --template= "$work/tree"

copy_tree "$here/src"
commit v1 "2025-01-06T09:00:00Z" "journal v1: articles, certificates, health"

copy_tree "$here/versions/v2"
commit v2 "2025-02-03T09:00:00Z" "journal v2: add nullable Article.summary (backward-compatible migration)"

copy_tree "$here/versions/v3"
commit v3 "2025-03-03T09:00:00Z" "journal v3: health check reads articles_articlemetrics (broken health)"

# v4 branches from v2, not v3.
git_ checkout --quiet --detach v2
git_ clean --quiet -fdx
copy_tree "$here/versions/v4"
commit v4 "2025-03-10T09:00:00Z" "journal v4: migration 0003 fails on purpose (broken migration)"

# v5 branches from v2 too.
git_ checkout --quiet --detach v2
git_ clean --quiet -fdx
copy_tree "$here/versions/v5"
commit v5 "2025-03-17T09:00:00Z" "journal v5: irreversible data migration 0003 (summary backfill)"

git_ branch --quiet --force main v2
git init --quiet --bare --initial-branch=main --template= "$dest"
git_ push --quiet "$(cd "$dest" && pwd)" refs/heads/main 'refs/tags/*'

for ref in v1 v2 v3 v4 v5 main; do
    printf '%-5s %s\n' "$ref" "$(git --git-dir="$dest" rev-parse "$ref^{commit}")"
done
