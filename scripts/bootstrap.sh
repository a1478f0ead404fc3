#!/usr/bin/env bash
# Everything the demo and the tests need on the controller, installed when missing:
# Debian packages (Docker engine, debootstrap, git, PostgreSQL and Redis binaries for the
# unit tests, an sshd for the host key test, nginx and Caddy for the load balancer module tests,
# age for decrypting encrypted backup copies where
# the key is) and the pinned Python tools in .venv (requirements/controller.txt).
# A second run with nothing to do takes about a second.
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

python="${OPSBOOK_PYTHON:-python3}"
"${python}" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' \
  || die "${python} is $(${python} --version 2>&1); opsbook's pins (ansible-core 2.19) are for Python 3.11 (set OPSBOOK_PYTHON)"

apt_ensure git curl make debootstrap docker.io postgresql-15 postgresql-client-15 redis-server rabbitmq-server openssh-server age nginx-light caddy

stamp="${OPSBOOK_VENV}/.opsbook-requirements.sha256"
want="$(sha256sum "${OPSBOOK_ROOT}/requirements/controller.txt" | cut -d' ' -f1)"
if [ "$(cat "${stamp}" 2>/dev/null)" != "${want}" ]; then
  log "installing the controller's Python tools into ${OPSBOOK_VENV}"
  [ -x "${OPSBOOK_VENV}/bin/python" ] || "${python}" -m venv "${OPSBOOK_VENV}"
  "${OPSBOOK_VENV}/bin/python" -m pip install -q --disable-pip-version-check -r "${OPSBOOK_ROOT}/requirements/controller.txt"
  echo "${want}" >"${stamp}"
fi

# Debian root filesystems with Python 3.9 and 3.13 for the modules' target-Python test (cached).
"${OPSBOOK_ROOT}/scripts/target-pythons.sh"
