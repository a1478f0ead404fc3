# shellcheck shell=bash
# Common helpers for opsbook's scripts. Source it; do not run it.
set -euo pipefail

OPSBOOK_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OPSBOOK_CACHE="${OPSBOOK_CACHE:-${HOME}/.cache/opsbook}"
OPSBOOK_VENV="${OPSBOOK_VENV:-${OPSBOOK_ROOT}/.venv}"
OPSBOOK_DEBIAN_MIRROR="${OPSBOOK_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
OPSBOOK_BASE_IMAGE="${OPSBOOK_BASE_IMAGE:-opsbook/debian:bookworm}"
OPSBOOK_SYSTEMD_IMAGE="${OPSBOOK_SYSTEMD_IMAGE:-opsbook/systemd:bookworm}"
# The label that carries an image's content hash (scripts/build-images.sh, lab-artifacts.sh): a build is skipped when it matches.
HASH_LABEL=org.opsbook.content-hash
OPSBOOK_STACK_IMAGE="${OPSBOOK_STACK_IMAGE:-opsbook/stack:bookworm}"
export OPSBOOK_ROOT OPSBOOK_CACHE OPSBOOK_VENV OPSBOOK_DEBIAN_MIRROR OPSBOOK_BASE_IMAGE OPSBOOK_SYSTEMD_IMAGE OPSBOOK_STACK_IMAGE
mkdir -p "${OPSBOOK_CACHE}"

log() { printf '\033[1m[opsbook]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[31m[opsbook] error:\033[0m %s\n' "$*" >&2; exit 1; }

# apt-get install only what is missing; `apt-get update` once per call when needed.
apt_ensure() {
  local missing=()
  local pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  [ "$(id -u)" -eq 0 ] || die "installing ${missing[*]} needs root"
  apt-get update -qq
  # Packages such as postgresql and redis-server start a system service on install; the
  # project starts its own instances, so a policy-rc.d keeps the packaged ones stopped.
  local policy=/usr/sbin/policy-rc.d had_policy=0
  [ -e "${policy}" ] && had_policy=1
  if [ "${had_policy}" -eq 0 ]; then
    printf '#!/bin/sh\nexit 101\n' >"${policy}"
    chmod 0755 "${policy}"
  fi
  local rc=0
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || rc=$?
  [ "${had_policy}" -eq 0 ] && rm -f "${policy}"
  [ "${rc}" -eq 0 ] || die "apt-get install ${missing[*]} failed"
}
