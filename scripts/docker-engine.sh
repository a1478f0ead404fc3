#!/usr/bin/env bash
# Make a Docker engine available: install docker.io when dockerd is absent, start dockerd
# in the background when no engine answers. `docker-engine.sh stop` stops only an engine
# this script started (its pid is kept in the cache directory).
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

pidfile="${OPSBOOK_CACHE}/dockerd.pid"
# The Molecule compose scenario's registry (molecule/compose) serves plain HTTP on this subnet:
# the engine started here pushes to it as an insecure registry. Nothing else is served there.
lab_registry_subnet="10.213.77.0/24"

start() {
  if docker info >/dev/null 2>&1; then
    docker info --format '{{json .RegistryConfig.InsecureRegistryCIDRs}}' | grep -qF "\"${lab_registry_subnet}\"" \
      || log "warning: this Docker engine does not take ${lab_registry_subnet} as an insecure registry: the Molecule compose scenario cannot push its images (stop it, then run $0 start)"
    return 0
  fi
  command -v dockerd >/dev/null 2>&1 || apt_ensure docker.io
  command -v docker >/dev/null 2>&1 || apt_ensure docker.io
  log "starting dockerd (log: ${OPSBOOK_CACHE}/dockerd.log)"
  nohup dockerd --insecure-registry "${lab_registry_subnet}" >"${OPSBOOK_CACHE}/dockerd.log" 2>&1 &
  echo $! >"${pidfile}"
  local i
  for i in $(seq 1 60); do
    docker info >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  tail -20 "${OPSBOOK_CACHE}/dockerd.log" >&2
  die "dockerd did not answer within 30 s"
}

stop() {
  [ -f "${pidfile}" ] || return 0
  local pid
  pid="$(cat "${pidfile}")"
  if kill -0 "${pid}" 2>/dev/null; then
    log "stopping the dockerd this project started (pid ${pid})"
    kill "${pid}"
    for _ in $(seq 1 40); do kill -0 "${pid}" 2>/dev/null || break; sleep 0.5; done
  fi
  rm -f "${pidfile}"
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  *) die "usage: $0 [start|stop]" ;;
esac
