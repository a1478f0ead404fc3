#!/usr/bin/env bash
# The embedded lab: lb1, app1, app2, db1 as systemd containers named <lab>-<host> on the
# private network <lab>, where <lab> is ${OPSBOOK_LAB:-opsbook-lab} (see inventories/lab/hosts.yml).
# Two labs can run side by side with different OPSBOOK_LAB and OPSBOOK_LAB_HTTP_PORT.
#   scripts/lab.sh up       build images when needed, create and start the containers
#   scripts/lab.sh down     remove the containers and the network
#   scripts/lab.sh status   list them
# lb1's port 80 is published on 127.0.0.1:${OPSBOOK_LAB_HTTP_PORT:-8080}.
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

lab="${OPSBOOK_LAB:-opsbook-lab}"
network="${lab}"
hosts=(lb1 app1 app2 db1)
http_port="${OPSBOOK_LAB_HTTP_PORT:-8080}"
apt_cache="${OPSBOOK_CACHE}/apt-archives"

# The systemd-in-Docker flags that work on this machine kind (--privileged does not).
systemd_flags=(
  --cap-add SYS_ADMIN --security-opt seccomp=unconfined --cgroupns=host
  -v /sys/fs/cgroup:/sys/fs/cgroup:rw --tmpfs /run --tmpfs /run/lock
)

wait_booted() {
  local name=$1 state i
  for i in $(seq 1 60); do
    state="$(docker exec "${name}" systemctl is-system-running 2>/dev/null || true)"
    case "${state}" in running|degraded) return 0 ;; esac
    sleep 0.5
  done
  die "${name} did not finish booting (systemd state: ${state:-none})"
}

up() {
  "${OPSBOOK_ROOT}/scripts/build-images.sh"
  docker network inspect "${network}" >/dev/null 2>&1 \
    || docker network create --label "org.opsbook.lab=${lab}" "${network}" >/dev/null
  local h name extra cache
  for h in "${hosts[@]}"; do
    name="${lab}-${h}"
    if [ "$(docker inspect -f '{{.State.Running}}' "${name}" 2>/dev/null)" = "true" ]; then
      continue
    fi
    docker rm -f "${name}" >/dev/null 2>&1 || true
    # One package cache per host (apt's archive lock is not shared across containers).
    cache="${apt_cache}/${h}"
    [ "${lab}" = opsbook-lab ] || cache="${apt_cache}/${lab}-${h}"
    mkdir -p "${cache}/partial"
    extra=()
    [ "${h}" = lb1 ] && extra=(-p "127.0.0.1:${http_port}:80")
    log "starting ${name}"
    docker run -d --name "${name}" --hostname "${h}" --network "${network}" --network-alias "${h}" \
      --label "org.opsbook.lab=${lab}" "${systemd_flags[@]}" \
      -v "${cache}:/var/cache/apt/archives" "${extra[@]}" \
      "${OPSBOOK_STACK_IMAGE}" >/dev/null
  done
  for h in "${hosts[@]}"; do wait_booted "${lab}-${h}"; done
  log "lab ${lab} is up: ${hosts[*]} (lb1 on http://127.0.0.1:${http_port}/)"
}

down() {
  local ids
  ids="$(docker ps -aq --filter "label=org.opsbook.lab=${lab}" 2>/dev/null || true)"
  [ -n "${ids}" ] && docker rm -f ${ids} >/dev/null
  docker network rm "${network}" >/dev/null 2>&1 || true
  log "lab ${lab} is down"
}

case "${1:-}" in
  up) up ;;
  down) docker info >/dev/null 2>&1 && down || log "no Docker engine: nothing to remove" ;;
  status) docker ps -a --filter "label=org.opsbook.lab=${lab}" --format 'table {{.Names}}\t{{.Status}}\t{{.Ports}}' ;;
  *) die "usage: $0 up|down|status" ;;
esac
