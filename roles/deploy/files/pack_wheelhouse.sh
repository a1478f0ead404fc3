# Packs the wheelhouse into one archive named by its content, run on the controller as
# `sh -c <this> pack WHEELHOUSE TMPDIR` by controller.yml. Prints the fingerprint and, when
# the archive was not there yet and was packed now, `created`. The archive's last member is
# .complete: a host that has it unpacked all of it. Written under a temporary name and
# renamed, so a run beside this one never reads half of it.
set -eu
cd "$1"
hash=$(ls -l --time-style=+%s -- *.whl | sha256sum | cut -c1-16)
echo "$hash"
dest="$2/opsbook-wheelhouse-$hash.v2.tar"
if [ ! -e "$dest" ]; then
  part=$(mktemp "$dest.part.XXXXXX")
  marks=$(mktemp -d)
  trap 'rm -rf "$part" "$marks"' EXIT
  : > "$marks/.complete"
  tar -cf "$part" -- *.whl
  tar -rf "$part" -C "$marks" .complete
  chmod 0644 "$part"
  mv -f "$part" "$dest"
  echo created
fi
