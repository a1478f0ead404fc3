#!/usr/bin/env bash
# The raw baseline of bench/scale/run.py: the steps playbooks/deploy.yml takes on success, each
# as one plain command, on N app hosts, over the transport under test.
#   bench/scale/baseline.sh <docker|ssh> <lab> <ref> <git dir> <serial> <host>...
# The steps are those of bench/deploy/baseline.sh --same-steps, for any number of hosts:
# a lock (mkdir on the first host); preflight per host (free disk, the database and the broker
# answer); the code archive made once here, copied to the first host and unpacked there with
# its virtualenv and the requirements from the host's wheelhouse, its static files collected
# into it (collectstatic, as deploy.yml does once in the build), that release packed, brought
# back here and copied to every other host in parallel (as forks do), checked and unpacked
# (RAW_BUILD=per_host: every host installs its own and collects into it, as before); the
# environment file written back; migrate once; then
# <serial> hosts at a time: out of nginx on lb1, 2 s for requests in flight, switch, restart
# beat (the first host), the worker drained with the Celery CLI, worker and web restarted,
# wait for /health/ to serve the release, back into nginx; the release through lb1; a record
# line per host; old releases beyond 5 removed; unlock.
# docker: `docker exec` / `docker cp`; ssh: OpenSSH with the lab's ssh_config (host keys
# checked) and one master connection per host, as Ansible's ControlPersist.
set -euo pipefail
transport=$1 lab=$2 ref=$3 repo=$4 serial=$5
shift 5
hosts=("$@")
root=/srv/journal
upstream=/etc/nginx/opsbook/journal-upstream.conf
cache="${OPSBOOK_CACHE:-${HOME}/.cache/opsbook}"
ssh_opts=(-F "${cache}/labs/${lab}/ssh_config" -o ControlMaster=auto -o ControlPersist=120s
  -o "ControlPath=${cache}/labs/${lab}/raw-cp-%C")
rev="$(git --git-dir "${repo}" rev-parse --verify "${ref}^{commit}")"
release="$(date -u +%Y%m%dT%H%M%SZ)-${ref}-raw"
started=$(date +%s)
archive="$(mktemp --suffix=.tar.gz)"
locked=0
cleanup() {
  rm -f "${archive}"
  if [ "${locked}" = 1 ]; then rx "${hosts[0]}" rmdir "${root}/.raw-deploy.lock"; fi
}
trap cleanup EXIT
git --git-dir "${repo}" archive --format=tar.gz --output="${archive}" "${rev}"
chmod 0644 "${archive}"

# rx [--user U] [--workdir D] HOST ARGV...: ARGV on the lab host, no shell in between.
rx() {
  local user="" dir="" host
  while :; do
    case "$1" in
      --user) user=$2; shift 2 ;;
      --workdir) dir=$2; shift 2 ;;
      *) break ;;
    esac
  done
  host=$1; shift
  if [ "${transport}" = docker ]; then
    docker exec ${user:+--user "${user}"} ${dir:+--workdir "${dir}"} "${lab}-${host}" "$@"
  else
    local cmd
    cmd="$(printf '%q ' "$@")"
    [ -n "${user}" ] && cmd="runuser -u ${user} -- ${cmd}"
    [ -n "${dir}" ] && cmd="cd ${dir} && ${cmd}"
    ssh "${ssh_opts[@]}" "${lab}-${host}" "${cmd}"
  fi
}
put() {  # HOST SRC DEST
  if [ "${transport}" = docker ]; then docker cp -q "$2" "${lab}-$1:$3"
  else ssh "${ssh_opts[@]}" "${lab}-$1" "cat > $3" <"$2"; fi
}
manage() {
  local host=$1 dir=$2; shift 2
  rx --user journal --workdir "${dir}" "${host}" \
    bash -c 'set -a; . /srv/journal/shared/env; set +a; exec venv/bin/python manage.py "$@"' manage "$@"
}
celery_cli() {
  local host=$1; shift
  rx --user journal --workdir "${root}/current" "${host}" \
    bash -c 'set -a; . /srv/journal/shared/env; set +a; exec venv/bin/celery -A journal "$@"' celery "$@"
}
drain() {
  local host=$1
  celery_cli "${host}" control cancel_consumer celery -d "worker@${host}" >/dev/null
  for _ in $(seq 1 60); do
    celery_cli "${host}" inspect active -d "worker@${host}" --json | grep -qF "\"worker@${host}\": []" && break
    sleep 1
  done
}
nginx_mark() {  # down|up HOST...
  local state=$1 expr="" host
  shift
  for host in "$@"; do
    if [ "${state}" = down ]; then expr+="s/^\(\s*server ${host}:8000 [^;]*\);/\1 down;/;"
    else expr+="s/^\(\s*server ${host}:8000 [^;]*\) down;/\1;/;"; fi
  done
  rx lb1 bash -c "sed -i '${expr}' ${upstream} && nginx -t -q && systemctl reload nginx.service"
}
each() {  # FUNCTION HOST...: FUNCTION HOST on every host at once; fails when one fails
  local fn=$1 pids=() host pid
  shift
  for host in "$@"; do "${fn}" "${host}" & pids+=($!); done
  for pid in "${pids[@]}"; do wait "${pid}"; done
}

rx "${hosts[0]}" mkdir "${root}/.raw-deploy.lock"
locked=1
preflight() {
  local host=$1 free
  free=$(rx "${host}" df --output=avail -B1 "${root}" | tail -n 1)
  [ "${free}" -gt 1073741824 ] || { echo "${host}: less than 1 GiB free under ${root}" >&2; return 1; }
  rx "${host}" bash -c 'exec 3<>/dev/tcp/db1/5432 && exec 4<>/dev/tcp/db1/6379'
}
each preflight "${hosts[@]}"
manage "${hosts[0]}" "${root}/current" showmigrations --plan | awk '/^\[ \]/ {n++} END {print n + 0 " pending migration(s)"}'

install() {
  local host=$1 wheels
  rx --user journal "${host}" mkdir -p "${root}/releases/${release}"
  put "${host}" "${archive}" /tmp/release.tar.gz
  rx "${host}" chmod 0644 /tmp/release.tar.gz
  rx --user journal "${host}" tar -xzf /tmp/release.tar.gz -C "${root}/releases/${release}"
  rx --user journal --workdir "${root}/releases/${release}" "${host}" bash -c "echo ${rev} > REVISION; echo ${release} > RELEASE"
  wheels="$(rx "${host}" bash -c "dirname \$(ls -d ${root}/shared/wheelhouse/*/.complete | head -n 1)")"
  rx --user journal --workdir "${root}/releases/${release}" "${host}" python3 -m venv venv
  rx --user journal --workdir "${root}/releases/${release}" "${host}" \
    venv/bin/pip install -q --no-cache-dir --no-index --find-links "${wheels}" -r requirements.txt
  rx "${host}" sh -c "cp -p ${root}/shared/env ${root}/shared/env.new && mv ${root}/shared/env.new ${root}/shared/env"
}
# Built once (as deploy_build: once, the lab's hosts share one platform): the first host
# builds the release, packs it (gzip -1), it comes back here and goes to every other host in
# parallel, checked (sha256) and unpacked at the same path. RAW_BUILD=per_host: every host
# builds its own (the steps of deploy_build: per_host, and of this script before it).
fetch() {  # HOST SRC DEST
  if [ "${transport}" = docker ]; then docker cp -q "${lab}-$1:$2" "$3"
  else ssh "${ssh_opts[@]}" "${lab}-$1" "cat $2" >"$3"; fi
}
shipped="$(mktemp --suffix=.tar.gz)"
trap 'cleanup; rm -f "${shipped}"' EXIT
receive() {
  local host=$1
  rx --user journal "${host}" mkdir -p "${root}/releases/${release}"
  put "${host}" "${shipped}" /tmp/release-built.tar.gz
  rx "${host}" chmod 0644 /tmp/release-built.tar.gz
  rx "${host}" sh -c "echo '${sum}  /tmp/release-built.tar.gz' | sha256sum -c --status"
  rx --user journal "${host}" tar -xzf /tmp/release-built.tar.gz -C "${root}/releases/${release}"
  rx "${host}" rm -f /tmp/release-built.tar.gz
  rx "${host}" sh -c "cp -p ${root}/shared/env ${root}/shared/env.new && mv ${root}/shared/env.new ${root}/shared/env"
}
collectstatic() { manage "$1" "${root}/releases/${release}" collectstatic --noinput >/dev/null; }
if [ "${RAW_BUILD:-once}" = once ]; then
  install "${hosts[0]}"
  collectstatic "${hosts[0]}"
  if [ "${#hosts[@]}" -gt 1 ]; then
    rx "${hosts[0]}" sh -c "cd ${root}/releases/${release} && tar -cf /tmp/release-built.tar . && gzip -1f /tmp/release-built.tar"
    fetch "${hosts[0]}" /tmp/release-built.tar.gz "${shipped}"
    rx "${hosts[0]}" rm -f /tmp/release-built.tar.gz
    sum="$(sha256sum "${shipped}" | cut -d' ' -f1)"
    each receive "${hosts[@]:1}"
  fi
else
  build() { install "$1" && collectstatic "$1"; }
  each build "${hosts[@]}"
fi
manage "${hosts[0]}" "${root}/releases/${release}" migrate --noinput >/dev/null

switch() {
  local host=$1
  rx "${host}" bash -c "ln -sfnT releases/${release} ${root}/current.new && mv -fT ${root}/current.new ${root}/current"
  [ "${host}" = "${hosts[0]}" ] && rx "${host}" systemctl restart journal-beat.service
  drain "${host}"
  rx "${host}" systemctl restart journal-worker.service journal.service
  for _ in $(seq 1 90); do
    rx "${host}" curl -fs http://127.0.0.1:8000/health/ | grep -q "\"version\": \"${release}\"" && return 0
    sleep 1
  done
  echo "${host} did not serve ${release}" >&2
  return 1
}
for ((i = 0; i < ${#hosts[@]}; i += serial)); do
  batch=("${hosts[@]:i:serial}")
  nginx_mark down "${batch[@]}"
  sleep 2
  each switch "${batch[@]}"
  nginx_mark up "${batch[@]}"
done
for _ in $(seq 1 30); do
  rx lb1 curl -fs http://127.0.0.1/health/ | grep -q "\"version\": \"${release}\"" && break
  sleep 1
done
line="{\"release\": \"${release}\", \"revision\": \"${rev}\", \"result\": \"ok\", \"seconds\": $(($(date +%s) - started))}"
finish() {
  local host=$1
  rx "${host}" bash -c "mkdir -p /var/log/opsbook && echo '${line}' >> /var/log/opsbook/journal-raw-deploy.jsonl
    mkdir -p /etc/ansible/facts.d && echo '${line}' > /etc/ansible/facts.d/opsbook_raw_deploy.fact
    cd ${root}/releases && ls -1t | tail -n +6 | grep -vx '${release}' | xargs -r rm -rf --"
}
each finish "${hosts[@]}"
echo "${release}"
