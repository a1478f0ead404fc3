#!/usr/bin/env bash
# Root filesystems with the Python versions the modules must run on besides the controller's
# 3.11 (tests/config.yml: >=3.9): Debian bullseye (python3.9) and trixie (python3.13), made
# with debootstrap from the Debian mirror and cached as ${OPSBOOK_CACHE}/pythons/<suite>.tar.
# tests/unit/plugins/test_target_pythons.py imports them as Docker images and runs every module
# there through Ansible. Run by scripts/bootstrap.sh; a second run with the tarballs cached
# does nothing. Debian has no 3.10 or 3.12 (docs/testing.md).
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

suites=(bullseye trixie)
dir="${OPSBOOK_CACHE}/pythons"
mkdir -p "${dir}"

make_rootfs() {
  local suite=$1 root
  root="$(mktemp -d "${dir}/${suite}.XXXXXX")"
  if ! debootstrap --variant=minbase --include=python3 "${suite}" "${root}" "${OPSBOOK_DEBIAN_MIRROR}" \
    >"${dir}/${suite}.log" 2>&1; then
    rm -rf "${root}"
    tail -20 "${dir}/${suite}.log" >&2
    return 1
  fi
  rm -rf "${root}"/var/cache/apt/archives/*.deb "${root}"/var/lib/apt/lists/* "${root}"/usr/share/doc \
    "${root}"/usr/share/man "${root}"/usr/share/locale
  tar -C "${root}" -cf "${dir}/${suite}.tar.tmp" . && mv "${dir}/${suite}.tar.tmp" "${dir}/${suite}.tar"
  rm -rf "${root}"
}

missing=()
for suite in "${suites[@]}"; do
  [ -s "${dir}/${suite}.tar" ] || missing+=("${suite}")
done
[ "${#missing[@]}" -eq 0 ] && exit 0
command -v debootstrap >/dev/null 2>&1 || apt_ensure debootstrap
log "making target Python root filesystems with debootstrap: ${missing[*]} (about a minute each)"
pids=()
for suite in "${missing[@]}"; do
  make_rootfs "${suite}" &
  pids+=("$!")
done
rc=0
for pid in "${pids[@]}"; do wait "${pid}" || rc=1; done
[ "${rc}" -eq 0 ] || die "debootstrap failed (logs: ${dir}/<suite>.log)"
