#!/usr/bin/env bash
# The whole test suite: lint, unit tests against real PostgreSQL, Redis and Celery processes,
# and every Molecule scenario against containers. Installs what it needs first.
# Extra arguments go to pytest (e.g. `scripts/test.sh -k provision`).
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "${OPSBOOK_ROOT}"

scripts/bootstrap.sh
# shellcheck disable=SC1091
source "${OPSBOOK_VENV}/bin/activate"

# Stop what this run started (a dockerd, the lab) and nothing else.
engine_was_running=0
docker info >/dev/null 2>&1 && engine_was_running=1
cleanup() {
  if [ "${engine_was_running}" -eq 0 ]; then
    scripts/docker-engine.sh stop || true
  fi
}
trap cleanup EXIT

scripts/build-images.sh
scripts/lab-artifacts.sh

mkdir -p tests/output
rc=0
# Two workers: the lab tests (one group, in order) on one, the Molecule scenarios (another
# group) on the other, unit and lint tests a file at a time wherever there is room; the groups
# keep the order tests/conftest.py gives them (--no-loadscope-reorder).
python -m pytest -n "${OPSBOOK_TEST_WORKERS:-2}" --dist loadgroup --no-loadscope-reorder "$@" || rc=$?
if [ "${rc}" -eq 5 ]; then
  die "pytest collected no test: refusing to call that a pass"
fi
exit "${rc}"
