#!/usr/bin/env bash
# The raw baseline for bench/deploy/run.py: the same deploy steps as playbooks/deploy.yml,
# as a plain shell script over `docker exec`, with none of its safety (no preflight, lock,
# load balancer handling, drain, health gate through lb1, rollback or records).
#   bench/deploy/baseline.sh <lab> <ref> <git dir>
# Install runs on both app hosts in parallel (as Ansible's forks do), migrate once on app1,
# collectstatic per host, then per host: switch, restart beat/worker/web, wait for /health/.
set -euo pipefail
lab=$1 ref=$2 repo=$3
root=/srv/journal
rev="$(git --git-dir "${repo}" rev-parse --verify "${ref}^{commit}")"
release="$(date -u +%Y%m%dT%H%M%SZ)-${ref}-raw"
archive="$(mktemp --suffix=.tar.gz)"
trap 'rm -f "${archive}"' EXIT
git --git-dir "${repo}" archive --format=tar.gz --output="${archive}" "${rev}"
chmod 0644 "${archive}"  # mktemp makes it 0600; the app user unpacks it

as_app() { local host=$1; shift; docker exec --user journal --workdir "${root}/releases/${release}" "${lab}-${host}" "$@"; }
manage() {
  local host=$1; shift
  # The env file as the units read it, without putting secrets in argv.
  docker exec --user journal --workdir "${root}/releases/${release}" "${lab}-${host}" \
    bash -c 'set -a; . /srv/journal/shared/env; set +a; exec venv/bin/python manage.py "$@"' manage "$@"
}

install() {
  local host=$1 wheels
  docker exec --user journal "${lab}-${host}" mkdir -p "${root}/releases/${release}"
  docker cp -q "${archive}" "${lab}-${host}:/tmp/release.tar.gz"
  docker exec --user journal "${lab}-${host}" tar -xzf /tmp/release.tar.gz -C "${root}/releases/${release}"
  as_app "${host}" bash -c "echo ${rev} > REVISION; echo ${release} > RELEASE"
  wheels="$(docker exec "${lab}-${host}" bash -c "dirname \$(ls -d ${root}/shared/wheelhouse/*/.complete | head -n 1)")"
  as_app "${host}" python3 -m venv venv
  as_app "${host}" venv/bin/pip install -q --no-cache-dir --no-index --find-links "${wheels}" -r requirements.txt
}

install app1 & a=$!
install app2 & b=$!
wait "${a}"; wait "${b}"
manage app1 migrate --noinput >/dev/null
for host in app1 app2; do manage "${host}" collectstatic --noinput >/dev/null; done
for host in app1 app2; do
  docker exec "${lab}-${host}" bash -c "ln -sfnT releases/${release} ${root}/current.new && mv -fT ${root}/current.new ${root}/current"
  units="journal-worker.service journal.service"
  [ "${host}" = app1 ] && units="journal-beat.service ${units}"
  # shellcheck disable=SC2086
  docker exec "${lab}-${host}" systemctl restart ${units}
  for _ in $(seq 1 90); do
    docker exec "${lab}-${host}" curl -fs http://127.0.0.1:8000/health/ | grep -q "\"version\": \"${release}\"" && break
    sleep 1
  done
done
echo "${release}"
