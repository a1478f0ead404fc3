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

# The compose scenario's base image for the sample app's image (images/journal-base): Python and
# the wheelhouse's packages. Skipped when its content hash (the base's id, the Dockerfile, the
# requirements, the wheel names) matches the image's label.
journal_base="${OPSBOOK_JOURNAL_BASE_IMAGE:-opsbook/journal-base:bookworm}"
want="$( { docker image inspect -f '{{.Id}}' "${OPSBOOK_BASE_IMAGE}"; cat "${OPSBOOK_ROOT}/images/journal-base/Dockerfile" \
           "${OPSBOOK_ROOT}/examples/webapp/src/requirements.txt"; ls "${OPSBOOK_CACHE}/wheelhouse"; } | sha256sum | cut -c1-16)"
if [ "$(docker image inspect -f "{{ index .Config.Labels \"${HASH_LABEL}\" }}" "${journal_base}" 2>/dev/null || true)" != "${want}" ]; then
  log "building ${journal_base} (images/journal-base)"
  ctx="$(mktemp -d)"
  cp "${OPSBOOK_ROOT}/images/journal-base/Dockerfile" "${OPSBOOK_ROOT}/examples/webapp/src/requirements.txt" "${ctx}/"
  cp -r "${OPSBOOK_CACHE}/wheelhouse" "${ctx}/wheels"
  docker build -q --build-arg "BASE_IMAGE=${OPSBOOK_BASE_IMAGE}" --label "${HASH_LABEL}=${want}" -t "${journal_base}" "${ctx}" >/dev/null
  rm -rf "${ctx}"
fi

# PostgreSQL 15 from Debian's packages as an image (images/postgres), for a database that runs as a
# compose service (app_db_compose_service): the scenario compose loads it into its db host's
# engine, and tests/unit/plugins/modules/test_pg_container.py runs it. Skipped when its content
# hash (the base's id, the Dockerfile, the entrypoint) matches the image's label.
postgres_image="${OPSBOOK_POSTGRES_IMAGE:-opsbook/postgres:bookworm}"
want="$( { docker image inspect -f '{{.Id}}' "${OPSBOOK_BASE_IMAGE}"; cat "${OPSBOOK_ROOT}/images/postgres/Dockerfile" \
           "${OPSBOOK_ROOT}/images/postgres/entrypoint.sh"; } | sha256sum | cut -c1-16)"
if [ "$(docker image inspect -f "{{ index .Config.Labels \"${HASH_LABEL}\" }}" "${postgres_image}" 2>/dev/null || true)" != "${want}" ]; then
  log "building ${postgres_image} (images/postgres)"
  docker build -q --build-arg "BASE_IMAGE=${OPSBOOK_BASE_IMAGE}" --label "${HASH_LABEL}=${want}" -t "${postgres_image}" \
    "${OPSBOOK_ROOT}/images/postgres" >/dev/null
fi
