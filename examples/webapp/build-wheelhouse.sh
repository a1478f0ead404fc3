#!/usr/bin/env bash
# Download the journal sample application's wheels for an offline install.
#
#   examples/webapp/build-wheelhouse.sh DEST
#   pip install --no-index --find-links DEST -r examples/webapp/src/requirements.txt
#
# Binary wheels only, for CPython 3.11 on manylinux x86_64 (Debian 12's python3),
# whatever Python or platform runs this script (${PYTHON:-python3} with pip).
# DEST/.requirements.sha256 records what DEST holds; when it matches
# requirements.txt and the target, nothing is downloaded.
set -euo pipefail

[[ $# -eq 1 && -n "$1" ]] || { echo "usage: $0 DEST" >&2; exit 2; }
dest=$1
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
requirements="$here/src/requirements.txt"
python=${PYTHON:-python3}

# Debian 12 has glibc 2.36: every manylinux tag up to 2.36 runs there. Older pips do not
# expand manylinux_2_36 into the older tags themselves, so list them all.
target_args=(--only-binary=:all: --implementation cp --python-version 3.11 --abi cp311 --abi abi3 --abi none)
for glibc_minor in $(seq 36 -1 5); do
    target_args+=(--platform "manylinux_2_${glibc_minor}_x86_64")
done
target_args+=(--platform manylinux2014_x86_64 --platform manylinux2010_x86_64 --platform manylinux1_x86_64)
stamp="$dest/.requirements.sha256"
want="$(sha256sum "$requirements" | cut -d' ' -f1)  cp311-manylinux_2_36_x86_64"

mkdir -p "$dest"
# One build at a time per DEST: a concurrent run waits, then finds the stamp and does nothing,
# instead of deleting wheels another run is downloading or installing from.
exec 9>"$dest/.lock"
flock --timeout 900 9 || { echo "$0: gave up after 900 s waiting for the lock on $dest/.lock" >&2; exit 1; }

if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    echo "wheelhouse $dest is up to date ($(find "$dest" -maxdepth 1 -name '*.whl' | wc -l) wheels)"
    exit 0
fi

rm -f "$stamp" "$dest"/*.whl
"$python" -m pip download --quiet --disable-pip-version-check --dest "$dest" "${target_args[@]}" -r "$requirements"
# Written last: an interrupted download leaves no stamp and is redone next time.
printf '%s\n' "$want" >"$stamp.tmp"
mv "$stamp.tmp" "$stamp"
echo "wheelhouse $dest built ($(find "$dest" -maxdepth 1 -name '*.whl' | wc -l) wheels)"
