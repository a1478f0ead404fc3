#!/usr/bin/env bash
# Download the Flask sample application's wheels for an offline install.
#
#   examples/flaskapp/build-wheelhouse.sh DEST
#   pip install --no-index --find-links DEST -r examples/flaskapp/v1/requirements.txt
#
# Binary wheels only, for CPython 3.11 on manylinux x86_64 (Debian 12's python3), whatever
# machine builds them (${PYTHON:-python3} with pip), every version pinned by requirements.txt
# (shared by v1 and v2). DEST/.requirements.sha256 records what DEST holds; when it matches,
# nothing is downloaded. The same rules as examples/webapp/build-wheelhouse.sh.
set -euo pipefail

[[ $# -eq 1 && -n "$1" ]] || { echo "usage: $0 DEST" >&2; exit 2; }
dest=$1
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
requirements="$here/v1/requirements.txt"
python=${PYTHON:-python3}

# Debian 12 has glibc 2.36: every manylinux tag up to 2.36 runs there.
target_args=(--only-binary=:all: --implementation cp --python-version 3.11 --abi cp311 --abi abi3 --abi none)
for glibc_minor in $(seq 36 -1 5); do
    target_args+=(--platform "manylinux_2_${glibc_minor}_x86_64")
done
target_args+=(--platform manylinux2014_x86_64 --platform manylinux2010_x86_64 --platform manylinux1_x86_64)
stamp="$dest/.requirements.sha256"
want="$(sha256sum "$requirements" | cut -d' ' -f1)  cp311-manylinux_2_36_x86_64"

mkdir -p "$dest"
exec 9>"$dest/.lock"
flock --timeout 900 9 || { echo "$0: gave up after 900 s waiting for the lock on $dest/.lock" >&2; exit 1; }

if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    echo "wheelhouse $dest is up to date ($(find "$dest" -maxdepth 1 -name '*.whl' | wc -l) wheels)"
    exit 0
fi

rm -f "$stamp" "$dest"/*.whl
# --no-deps: requirements.txt pins the whole set; a dependency it misses fails the offline install.
"$python" -m pip download --quiet --disable-pip-version-check --no-deps --dest "$dest" "${target_args[@]}" -r "$requirements"
printf '%s\n' "$want" >"$stamp.tmp"
mv "$stamp.tmp" "$stamp"
echo "wheelhouse $dest built ($(find "$dest" -maxdepth 1 -name '*.whl' | wc -l) wheels)"
