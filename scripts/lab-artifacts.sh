#!/usr/bin/env bash
# What the lab deploys, built on the controller: the sample app's bare git repository with
# tags v1..v5 ($OPSBOOK_CACHE/journal.git) and its wheelhouse ($OPSBOOK_CACHE/wheelhouse).
# Both builds are reproducible and skip work when nothing changed.
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

"${OPSBOOK_ROOT}/examples/webapp/build-repo.sh" "${OPSBOOK_CACHE}/journal.git" >/dev/null
PYTHON="${OPSBOOK_VENV}/bin/python" "${OPSBOOK_ROOT}/examples/webapp/build-wheelhouse.sh" "${OPSBOOK_CACHE}/wheelhouse" \
  2> >(grep -v "^WARNING: Location" >&2) >/dev/null
log "lab artifacts ready: ${OPSBOOK_CACHE}/journal.git (v1..v5), ${OPSBOOK_CACHE}/wheelhouse"
