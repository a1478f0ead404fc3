#!/usr/bin/env bash
# Root filesystems with the Python versions the modules must run on besides the controller's
# 3.11 (tests/config.yml: >=3.9): Debian bullseye (3.9) and trixie (3.13), Ubuntu jammy (3.10)
# and noble (3.12), made with debootstrap (minbase plus python3) and cached as
# ${OPSBOOK_CACHE}/pythons/<suite>.tar. tests/unit/plugins/modules/test_target_pythons.py
# imports them as Docker images and runs every module there through Ansible.
# Ubuntu's archive key comes from Debian: trixie's ubuntu-keyring package, installed into the
# trixie root filesystem (checked against Debian's keyring by debootstrap) and kept beside the
# tarballs. Run by scripts/bootstrap.sh; with everything cached it does nothing.
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

ubuntu_mirror="${OPSBOOK_UBUNTU_MIRROR:-http://archive.ubuntu.com/ubuntu}"
dir="${OPSBOOK_CACHE}/pythons"
keyring="${dir}/ubuntu-archive-keyring.gpg"
mkdir -p "${dir}"

# make_rootfs SUITE MIRROR SCRIPT [DEBOOTSTRAP OPTION...]; SCRIPT empty: debootstrap's own for SUITE.
make_rootfs() {
  local suite=$1 mirror=$2 script=$3 root
  shift 3
  root="$(mktemp -d "${dir}/${suite}.XXXXXX")"
  if ! debootstrap --variant=minbase "$@" "${suite}" "${root}" "${mirror}" ${script:+"${script}"} \
    >"${dir}/${suite}.log" 2>&1; then
    rm -rf "${root}"
    tail -20 "${dir}/${suite}.log" >&2
    return 1
  fi
  if [ "${suite}" = trixie ]; then
    cp "${root}/usr/share/keyrings/ubuntu-archive-keyring.gpg" "${keyring}.tmp" && mv "${keyring}.tmp" "${keyring}"
  fi
  rm -rf "${root}"/var/cache/apt/archives/*.deb "${root}"/var/lib/apt/lists/* "${root}"/usr/share/doc \
    "${root}"/usr/share/man "${root}"/usr/share/locale
  tar -C "${root}" -cf "${dir}/${suite}.tar.tmp" . && mv "${dir}/${suite}.tar.tmp" "${dir}/${suite}.tar"
  rm -rf "${root}"
}

cached() { [ -s "${dir}/$1.tar" ]; }

debian=()
cached bullseye || debian+=(bullseye)
{ cached trixie && [ -s "${keyring}" ]; } || debian+=(trixie)
ubuntu=()
for suite in jammy noble; do cached "${suite}" || ubuntu+=("${suite}"); done
[ "${#debian[@]}" -eq 0 ] && [ "${#ubuntu[@]}" -eq 0 ] && exit 0

command -v debootstrap >/dev/null 2>&1 || apt_ensure debootstrap
log "making target Python root filesystems with debootstrap: ${debian[*]} ${ubuntu[*]} (a minute or two)"
pids=()
for suite in "${debian[@]}"; do
  extra=python3
  [ "${suite}" = trixie ] && extra=python3,ubuntu-keyring
  make_rootfs "${suite}" "${OPSBOOK_DEBIAN_MIRROR}" "" "--include=${extra}" &
  pids+=("$!")
done
rc=0
for pid in "${pids[@]}"; do wait "${pid}" || rc=1; done
[ "${rc}" -eq 0 ] || die "debootstrap failed (logs: ${dir}/<suite>.log)"

pids=()
for suite in "${ubuntu[@]}"; do
  # debootstrap 1.0.128 (bookworm) has no script named noble; Ubuntu's are all the same one.
  make_rootfs "${suite}" "${ubuntu_mirror}" /usr/share/debootstrap/scripts/jammy --include=python3 \
    "--keyring=${keyring}" &
  pids+=("$!")
done
for pid in "${pids[@]}"; do wait "${pid}" || rc=1; done
[ "${rc}" -eq 0 ] || die "debootstrap failed (logs: ${dir}/<suite>.log)"
