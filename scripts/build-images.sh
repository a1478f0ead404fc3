#!/usr/bin/env bash
# Build the lab images on a machine of this kind, from nothing:
#   1. a Docker engine (installed and started when absent),
#   2. a Debian 12 base image: pulled where a registry answers, else debootstrap + import,
#   3. the systemd image (images/systemd) with python3, sudo, iproute2, procps, the host CA bundle
#      and a bytecode cache for Ansible's module payloads (images/systemd/opsbook_payload_cache.py),
#   4. the stack image (images/stack): that plus every package provision installs, disabled.
# Each image carries a content hash in a label; when nothing changed the build is skipped.
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"


ca_bundle="${OPSBOOK_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"

image_label() {
  docker image inspect -f "{{ index .Config.Labels \"${HASH_LABEL}\" }}" "$1" 2>/dev/null || true
}

build_base() {
  local want have
  want="$(printf 'bookworm minbase %s' "${OPSBOOK_DEBIAN_MIRROR}" | sha256sum | cut -c1-16)"
  have="$(image_label "${OPSBOOK_BASE_IMAGE}")"
  if [ "${have}" = "${want}" ]; then
    log "base image ${OPSBOOK_BASE_IMAGE} is up to date"
    return 0
  fi
  if timeout "${OPSBOOK_PULL_TIMEOUT:-30}" docker pull -q debian:bookworm >/dev/null 2>&1; then
    log "pulled debian:bookworm"
    printf 'FROM debian:bookworm\nLABEL %s=%s\n' "${HASH_LABEL}" "${want}" \
      | docker build -q -t "${OPSBOOK_BASE_IMAGE}" - >/dev/null
    return 0
  fi
  log "no registry answered: building the base image with debootstrap from ${OPSBOOK_DEBIAN_MIRROR}"
  command -v debootstrap >/dev/null 2>&1 || apt_ensure debootstrap
  local root
  root="$(mktemp -d "${OPSBOOK_CACHE}/rootfs.XXXXXX")"
  # shellcheck disable=SC2064
  trap "rm -rf '${root}'" EXIT
  debootstrap --variant=minbase bookworm "${root}" "${OPSBOOK_DEBIAN_MIRROR}" >"${OPSBOOK_CACHE}/debootstrap.log" 2>&1 \
    || { tail -20 "${OPSBOOK_CACHE}/debootstrap.log" >&2; die "debootstrap failed (log: ${OPSBOOK_CACHE}/debootstrap.log)"; }
  # Same apt sources as the official image, so security updates are seen.
  cat >"${root}/etc/apt/sources.list" <<SOURCES
deb ${OPSBOOK_DEBIAN_MIRROR} bookworm main
deb ${OPSBOOK_DEBIAN_MIRROR} bookworm-updates main
deb ${OPSBOOK_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security} bookworm-security main
SOURCES
  rm -rf "${root}"/var/cache/apt/archives/*.deb "${root}"/var/lib/apt/lists/*
  tar -C "${root}" -c . | docker import \
    -c "LABEL ${HASH_LABEL}=${want}" -c 'CMD ["/bin/bash"]' - "${OPSBOOK_BASE_IMAGE}" >/dev/null
  rm -rf "${root}"
  trap - EXIT
}

# build_image IMAGE DIR BASE [SRC:NAME ...]: images/DIR/Dockerfile built on BASE, each SRC
# copied into the build context as NAME. Skipped when the content hash (BASE's id, the
# Dockerfile, the files) matches the image's label.
build_image() {
  local image=$1 dir=$2 base=$3 ctx want have pair
  shift 3
  want="$( { docker image inspect -f '{{.Id}}' "${base}"; cat "${OPSBOOK_ROOT}/images/${dir}/Dockerfile";
             for pair in "$@"; do cat "${pair%:*}"; done; } | sha256sum | cut -c1-16)"
  have="$(image_label "${image}")"
  if [ "${have}" = "${want}" ]; then
    log "${dir} image ${image} is up to date"
    return 0
  fi
  log "building ${image} (images/${dir})"
  ctx="$(mktemp -d)"
  cp "${OPSBOOK_ROOT}/images/${dir}/Dockerfile" "${ctx}/"
  for pair in "$@"; do cp "${pair%:*}" "${ctx}/${pair##*:}"; done
  docker build -q --build-arg "BASE_IMAGE=${base}" --label "${HASH_LABEL}=${want}" -t "${image}" "${ctx}" >/dev/null
  rm -rf "${ctx}"
}

"$(dirname "$0")/docker-engine.sh" start
build_base
[ -r "${ca_bundle}" ] || die "CA bundle ${ca_bundle} not readable (set OPSBOOK_CA_BUNDLE)"
build_image "${OPSBOOK_SYSTEMD_IMAGE}" systemd "${OPSBOOK_BASE_IMAGE}" "${ca_bundle}:host-ca-bundle.crt" \
  "${OPSBOOK_ROOT}/images/systemd/opsbook_payload_cache.py:opsbook_payload_cache.py" \
  "${OPSBOOK_ROOT}/images/systemd/opsbook_payload_cache.pth:opsbook_payload_cache.pth"
build_image "${OPSBOOK_STACK_IMAGE}" stack "${OPSBOOK_SYSTEMD_IMAGE}"
log "images ready: ${OPSBOOK_BASE_IMAGE}, ${OPSBOOK_SYSTEMD_IMAGE}, ${OPSBOOK_STACK_IMAGE}"
