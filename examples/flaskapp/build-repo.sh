#!/usr/bin/env bash
# Build the Flask sample application's (pdfsmall's) git history as a bare repository.
#
#   examples/flaskapp/build-repo.sh DEST
#
# DEST is (re)created with tags v1, v2 and branch main (= v2):
#   v1  v1/
#   v2  v1 + versions/v2   a Flask-Migrate migration (nullable jobs.processed_by) and the worker
#                          that fills it
#
# Authors, committers, dates and file modes are fixed, and the user's git configuration is
# ignored, so the commit ids are the same on every machine (as examples/webapp/build-repo.sh).
set -euo pipefail

[[ $# -eq 1 && -n "$1" ]] || { echo "usage: $0 DEST (creates or recreates a bare repository with tags v1, v2)" >&2; exit 2; }
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

export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
export GIT_AUTHOR_NAME="opsbook" GIT_AUTHOR_EMAIL="opsbook@example.invalid"
export GIT_COMMITTER_NAME="opsbook" GIT_COMMITTER_EMAIL="opsbook@example.invalid"
export TZ=UTC LC_ALL=C

work=$(mktemp -d "${TMPDIR:-/tmp}/pdfsmall-repo.XXXXXX")
trap 'rm -rf "$work"' EXIT
git_() { git -C "$work/tree" "$@"; }

copy_tree() {
    # Runtime leftovers (bytecode, RELEASE, a local database) must not change the commits.
    tar -C "$1" --exclude=__pycache__ --exclude='*.pyc' --exclude=./RELEASE --exclude='*.sqlite' -cf - . |
        tar -C "$work/tree" -xf -
}

commit() {
    local tag=$1 date=$2 message=$3
    find "$work/tree" -path "$work/tree/.git" -prune -o -type f -exec chmod 0644 {} +
    # Re-hash every file: an overlay file of the same size and mtime looks unchanged to git's stat cache.
    git_ rm -r --cached --quiet --ignore-unmatch .
    git_ add --all
    GIT_AUTHOR_DATE=$date GIT_COMMITTER_DATE=$date git_ commit --quiet --no-verify -m "$message"
    GIT_COMMITTER_DATE=$date git_ tag --annotate "$tag" -m "pdfsmall $tag"
}

mkdir "$work/tree"
git init --quiet --initial-branch=main --template= "$work/tree"
copy_tree "$here/v1"
commit v1 "2025-01-06T09:00:00Z" "pdfsmall v1: jobs API, Celery compression task, health"
copy_tree "$here/versions/v2"
commit v2 "2025-02-03T09:00:00Z" "pdfsmall v2: jobs.processed_by (Flask-Migrate migration 0002), filled by the worker"

git init --quiet --bare --initial-branch=main --template= "$dest"
git_ push --quiet "$(cd "$dest" && pwd)" refs/heads/main 'refs/tags/*'
for ref in v1 v2 main; do
    printf '%-5s %s\n' "$ref" "$(git --git-dir="$dest" rev-parse "$ref^{commit}")"
done
