#!/usr/bin/env bash
# The embedded lab: lb1, app1, app2, db1 as systemd containers named <lab>-<host> on the
# private network <lab>, where <lab> is ${OPSBOOK_LAB:-opsbook-lab} (see inventories/lab/hosts.yml).
# Two labs can run side by side with different OPSBOOK_LAB and OPSBOOK_LAB_HTTP_PORT.
# OPSBOOK_LAB_APP_HOSTS=N (default 2) makes app1..appN instead of app1, app2 (bench/scale).
#   scripts/lab.sh up       build images when needed, create and start the containers
#   scripts/lab.sh down     remove the containers and the network
#   scripts/lab.sh status   list them
# lb1's port 80 is published on 127.0.0.1:${OPSBOOK_LAB_HTTP_PORT:-8080}.
# SSH (inventories/lab_ssh): every container runs sshd with host keys of its own. `up` puts
# the controller's key ($OPSBOOK_CACHE/lab-ssh/id_ed25519, made once) in root's
# authorized_keys, reads each container's host public key with `docker exec` (not over the
# network: that would trust whatever answers) and writes, in $OPSBOOK_CACHE/labs/<lab>/,
# known_hosts and ssh_config (each host by its container name, its IP on the lab network).
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

lab="${OPSBOOK_LAB:-opsbook-lab}"
network="${lab}"
app_count="${OPSBOOK_LAB_APP_HOSTS:-2}"
[[ "${app_count}" =~ ^[1-9][0-9]*$ ]] || die "OPSBOOK_LAB_APP_HOSTS must be a count of app hosts, 1 or more (got '${app_count}')"
hosts=(lb1)
for i in $(seq 1 "${app_count}"); do hosts+=("app${i}"); done
hosts+=(db1)
http_port="${OPSBOOK_LAB_HTTP_PORT:-8080}"
apt_cache="${OPSBOOK_CACHE}/apt-archives"
ssh_key="${OPSBOOK_CACHE}/lab-ssh/id_ed25519"
state_dir="${OPSBOOK_CACHE}/labs/${lab}"

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
  ssh_setup
  log "lab ${lab} is up: ${hosts[*]} (lb1 on http://127.0.0.1:${http_port}/; SSH: ${state_dir}/ssh_config)"
}

# The controller's key in each container, each container's host key in known_hosts, and an
# ssh_config naming each container's address. Written to temporary files and moved into
# place, so a reader never sees half a file.
ssh_setup() {
  local h name ip key pub known config
  if [ ! -s "${ssh_key}" ]; then
    mkdir -p -m 0700 "$(dirname "${ssh_key}")"
    ssh-keygen -q -t ed25519 -N '' -C "opsbook-lab-controller" -f "${ssh_key}"
  fi
  pub="$(cat "${ssh_key}.pub")"
  mkdir -p -m 0700 "${state_dir}"
  known="$(mktemp "${state_dir}/known_hosts.XXXXXX")"
  config="$(mktemp "${state_dir}/ssh_config.XXXXXX")"
  for h in "${hosts[@]}"; do
    name="${lab}-${h}"
    if ! docker exec "${name}" test -x /usr/sbin/sshd; then
      rm -f "${known}" "${config}"
      log "warning: ${name} was made from an image without sshd: no SSH for lab ${lab} (recreate it: scripts/lab.sh down; scripts/lab.sh up)"
      return 0
    fi
    docker exec -i "${name}" sh -ec 'install -d -m 0700 /root/.ssh; key=$(cat); touch /root/.ssh/authorized_keys
      grep -qxF "$key" /root/.ssh/authorized_keys || printf "%s\n" "$key" >>/root/.ssh/authorized_keys
      chmod 0600 /root/.ssh/authorized_keys' <<<"${pub}"
    # sshd made its host keys before it started; wait for it to listen.
    for _ in $(seq 1 40); do
      docker exec "${name}" systemctl is-active -q ssh.service && break
      sleep 0.25
    done
    docker exec "${name}" systemctl is-active -q ssh.service || die "sshd did not start in ${name} (docker exec ${name} journalctl -u ssh)"
    key="$(docker exec "${name}" cat /etc/ssh/ssh_host_ed25519_key.pub | awk '{print $1, $2}')"
    ip="$(docker inspect -f "{{ (index .NetworkSettings.Networks \"${network}\").IPAddress }}" "${name}")"
    [ -n "${key}" ] && [ -n "${ip}" ] || die "no host key or address for ${name}"
    printf '%s %s\n' "${name}" "${key}" >>"${known}"
    printf 'Host %s\n  HostName %s\n  HostKeyAlias %s\n' "${name}" "${ip}" "${name}" >>"${config}"
  done
  cat >>"${config}" <<CONFIG
Host *
  User root
  IdentityFile ${ssh_key}
  IdentitiesOnly yes
  UserKnownHostsFile ${state_dir}/known_hosts
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
  PasswordAuthentication no
  BatchMode yes
CONFIG
  chmod 0644 "${known}" "${config}"
  mv -f "${known}" "${state_dir}/known_hosts"
  mv -f "${config}" "${state_dir}/ssh_config"
}

down() {
  local ids
  ids="$(docker ps -aq --filter "label=org.opsbook.lab=${lab}" 2>/dev/null || true)"
  [ -n "${ids}" ] && docker rm -f ${ids} >/dev/null
  docker network rm "${network}" >/dev/null 2>&1 || true
  rm -rf "${state_dir}"
  log "lab ${lab} is down"
}

case "${1:-}" in
  up) up ;;
  down) docker info >/dev/null 2>&1 && down || log "no Docker engine: nothing to remove" ;;
  status) docker ps -a --filter "label=org.opsbook.lab=${lab}" --format 'table {{.Names}}\t{{.Status}}\t{{.Ports}}' ;;
  *) die "usage: $0 up|down|status" ;;
esac
