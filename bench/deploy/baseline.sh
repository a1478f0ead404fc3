#!/usr/bin/env bash
# The raw baselines for bench/deploy/run.py: playbooks/deploy.yml's deploy as a plain shell
# script over `docker exec`.
#   bench/deploy/baseline.sh [--same-steps] <lab> <ref> <git dir>
# Bare (default): build the release once on app1 with its static files and copy it to app2 (as
# deploy_build: once), migrate once on app1, then per host: switch, restart beat/worker/web, wait for
# /health/; none of deploy.yml's safety (no preflight, lock, load balancer handling, drain,
# health gate through lb1, rollback or records).
# --same-steps: the steps deploy.yml takes on success, each as one plain command: a lock
# (mkdir), preflight (free disk per host, the database and the broker answer, pending
# migrations listed), the install, the environment file written (the same content back: this
# script knows no secrets to render), migrate and collectstatic as above, then one host at a
# time: out of nginx (mark the upstream server down, nginx -t, reload), wait for requests in
# flight (deploy_lb_drain_seconds, 2 s), switch, restart beat, drain the worker with the
# Celery CLI (cancel_consumer, then `inspect active` every second until it runs nothing),
# restart the worker (warm shutdown) and web, wait until the host serves the release healthy,
# back into nginx;
# then the release through lb1, a JSON line in each host's deploy log and its local fact, old
# releases beyond 5 removed, unlock. No rollback (nothing fails here), no hooks, no checks of
# what a command did beyond its exit status.
set -euo pipefail
same=0
if [ "${1:-}" = --same-steps ]; then same=1; shift; fi
lab=$1 ref=$2 repo=$3
root=/srv/journal
upstream=/etc/nginx/opsbook/journal-upstream.conf
rev="$(git --git-dir "${repo}" rev-parse --verify "${ref}^{commit}")"
release="$(date -u +%Y%m%dT%H%M%SZ)-${ref}-raw"
started=$(date +%s)
archive="$(mktemp --suffix=.tar.gz)"
cleanup() {
  rm -f "${archive}"
  if [ "${same}" = 1 ]; then
    # Only a lock this run took: a run refused by another's lock (mkdir failed) leaves it.
    if [ "${locked:-0}" = 1 ]; then docker exec "${lab}-app1" rmdir "${root}/.raw-deploy.lock"; fi
  fi
}
trap cleanup EXIT
git --git-dir "${repo}" archive --format=tar.gz --output="${archive}" "${rev}"
chmod 0644 "${archive}"  # mktemp makes it 0600; the app user unpacks it

as_app() { local host=$1; shift; docker exec --user journal --workdir "${root}/releases/${release}" "${lab}-${host}" "$@"; }
manage() {
  local host=$1 dir=$2; shift 2
  # The env file as the units read it, without putting secrets in argv.
  docker exec --user journal --workdir "${dir}" "${lab}-${host}" \
    bash -c 'set -a; . /srv/journal/shared/env; set +a; exec venv/bin/python manage.py "$@"' manage "$@"
}
celery_cli() {  # host args...: the release's Celery CLI as the workers run it
  local host=$1; shift
  docker exec --user journal --workdir "${root}/current" "${lab}-${host}" \
    bash -c 'set -a; . /srv/journal/shared/env; set +a; exec venv/bin/celery -A journal "$@"' celery "$@"
}
drain() {  # host: the worker stops consuming, then runs nothing (at most 60 s)
  local host=$1
  celery_cli "${host}" control cancel_consumer celery -d "worker@${host}" >/dev/null
  for _ in $(seq 1 60); do
    celery_cli "${host}" inspect active -d "worker@${host}" --json | grep -qF "\"worker@${host}\": []" && break
    sleep 1
  done
}
nginx_mark() {  # host down|up
  local host=$1 state=$2 expr
  if [ "${state}" = down ]; then expr="s/^\(\s*server ${host}:8000 [^;]*\);/\1 down;/"
  else expr="s/^\(\s*server ${host}:8000 [^;]*\) down;/\1;/"; fi
  docker exec "${lab}-lb1" bash -c "sed -i '${expr}' ${upstream} && nginx -t -q && systemctl reload nginx.service"
}

if [ "${same}" = 1 ]; then
  docker exec "${lab}-app1" mkdir "${root}/.raw-deploy.lock"
  locked=1
  for host in app1 app2; do
    free=$(docker exec "${lab}-${host}" df --output=avail -B1 "${root}" | tail -n 1)
    [ "${free}" -gt 1073741824 ] || { echo "${host}: less than 1 GiB free under ${root}" >&2; exit 1; }
    # The database and the broker answer from the app host (their ports, as deploy.yml checks).
    docker exec "${lab}-${host}" bash -c 'exec 3<>/dev/tcp/db1/5432 && exec 4<>/dev/tcp/db1/6379'
  done
  # Pending migrations listed (a failing showmigrations stops the deploy, as deploy.yml's does).
  plan="$(manage app1 "${root}/current" showmigrations --plan)"
  awk '/^\[ \]/ {n++} END {print n + 0 " pending migration(s)"}' <<<"${plan}"
fi

# Built once, as deploy.yml does since issue 24 (deploy_build: once): the release and its
# virtualenv on app1 (the build host, which holds the wheelhouse), then the finished release
# copied to app2 at the same path (tar over the controller, as deploy.yml packs, fetches and
# unpacks it).
build() {
  local wheels
  docker exec --user journal "${lab}-app1" mkdir -p "${root}/releases/${release}"
  docker cp -q "${archive}" "${lab}-app1:/tmp/release.tar.gz"
  docker exec --user journal "${lab}-app1" tar -xzf /tmp/release.tar.gz -C "${root}/releases/${release}"
  as_app app1 bash -c "echo ${rev} > REVISION; echo ${release} > RELEASE"
  wheels="$(docker exec "${lab}-app1" bash -c "dirname \$(ls -d ${root}/shared/wheelhouse/*/.complete | head -n 1)")"
  as_app app1 python3 -m venv venv
  as_app app1 venv/bin/pip install -q --no-cache-dir --no-index --find-links "${wheels}" -r requirements.txt
  # collectstatic once, into the release (STATIC_ROOT is inside it), so the files ship with it.
  manage app1 "${root}/releases/${release}" collectstatic --noinput >/dev/null
}
ship() {
  local host=$1
  docker exec --user journal "${lab}-${host}" mkdir -p "${root}/releases/${release}"
  docker exec --user journal "${lab}-app1" tar -czf - -C "${root}/releases/${release}" . \
    | docker exec -i --user journal "${lab}-${host}" tar -xzf - -C "${root}/releases/${release}"
}

build
ship app2
if [ "${same}" = 1 ]; then
  for host in app1 app2; do
    docker exec "${lab}-${host}" sh -c "cp -p ${root}/shared/env ${root}/shared/env.new && mv ${root}/shared/env.new ${root}/shared/env"
  done
fi
manage app1 "${root}/releases/${release}" migrate --noinput >/dev/null
for host in app1 app2; do
  if [ "${same}" = 1 ]; then nginx_mark "${host}" down; sleep 2; fi
  docker exec "${lab}-${host}" bash -c "ln -sfnT releases/${release} ${root}/current.new && mv -fT ${root}/current.new ${root}/current"
  [ "${host}" = app1 ] && docker exec "${lab}-${host}" systemctl restart journal-beat.service
  if [ "${same}" = 1 ]; then drain "${host}"; fi
  # SIGTERM is Celery's warm shutdown: systemd waits for the running tasks (TimeoutStopSec).
  docker exec "${lab}-${host}" systemctl restart journal-worker.service journal.service
  for _ in $(seq 1 90); do
    docker exec "${lab}-${host}" curl -fs http://127.0.0.1:8000/health/ | grep -q "\"version\": \"${release}\"" && break
    sleep 1
  done
  if [ "${same}" = 1 ]; then nginx_mark "${host}" up; fi
done
if [ "${same}" = 1 ]; then
  for _ in $(seq 1 30); do
    docker exec "${lab}-lb1" curl -fs http://127.0.0.1/health/ | grep -q "\"version\": \"${release}\"" && break
    sleep 1
  done
  line="{\"release\": \"${release}\", \"revision\": \"${rev}\", \"result\": \"ok\", \"seconds\": $(( $(date +%s) - started ))}"
  for host in app1 app2; do
    docker exec "${lab}-${host}" bash -c "mkdir -p /var/log/opsbook && echo '${line}' >> /var/log/opsbook/journal-raw-deploy.jsonl"
    docker exec "${lab}-${host}" bash -c "mkdir -p /etc/ansible/facts.d && echo '${line}' > /etc/ansible/facts.d/opsbook_raw_deploy.fact"
    docker exec "${lab}-${host}" bash -c "cd ${root}/releases && ls -1t | tail -n +6 | grep -vx '${release}' | xargs -r rm -rf --"
  done
fi
echo "${release}"
