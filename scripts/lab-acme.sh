#!/usr/bin/env bash
# A private ACME server for the lab (docs/tls.md): Let's Encrypt's test server pebble (the Debian
# package in the stack image) on db1, with pebble-challtestsrv as its DNS, which answers every
# name with lb1's address, so pebble's HTTP-01 validation really fetches the challenge from the
# load balancer on port 80 (PEBBLE_VA_ALWAYS_VALID is not set). Certificates it issues chain to a
# root pebble makes at each start: trust it for tests only.
#
#   scripts/lab-acme.sh start   # prints the directory URL; writes, in $OPSBOOK_CACHE/labs/<lab>/,
#                               # pebble-root.pem (the issuing root, for clients)
#   scripts/lab-acme.sh stop
#
# On lb1, /etc/opsbook-lab/pebble-listener.pem is the CA of pebble's own HTTPS (the ACME API),
# for provision_tls_acme_ca_bundle.
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

lab="${OPSBOOK_LAB:-opsbook-lab}"
acme_host="${OPSBOOK_LAB_ACME_HOST:-db1}"
state_dir="${OPSBOOK_CACHE}/labs/${lab}"
conf=/etc/opsbook-lab
directory="https://${acme_host}:14000/dir"

in_host() { docker exec -i "${lab}-$1" "${@:2}"; }

start() {
  docker inspect "${lab}-${acme_host}" >/dev/null 2>&1 || die "the lab ${lab} is not up (scripts/lab.sh up)"
  local lb_ip
  lb_ip="$(docker inspect -f "{{(index .NetworkSettings.Networks \"${lab}\").IPAddress}}" "${lab}-lb1")"
  [ -n "${lb_ip}" ] || die "no address for ${lab}-lb1 on the network ${lab}"
  in_host "${acme_host}" sh -euc "
    mkdir -p ${conf} && cd ${conf}
    test -s listener.pem || openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 30 \
      -subj /CN=${acme_host} -addext subjectAltName=DNS:${acme_host} \
      -keyout listener.key -out listener.pem 2>/dev/null
    cat > pebble.json <<JSON
{\"pebble\": {\"listenAddress\": \"0.0.0.0:14000\", \"managementListenAddress\": \"0.0.0.0:15000\",
  \"certificate\": \"${conf}/listener.pem\", \"privateKey\": \"${conf}/listener.key\",
  \"httpPort\": 80, \"tlsPort\": 443, \"ocspResponderURL\": \"\", \"externalAccountBindingRequired\": false}}
JSON
    systemctl stop opsbook-pebble.service opsbook-challtestsrv.service 2>/dev/null || true
    systemctl reset-failed opsbook-pebble.service opsbook-challtestsrv.service 2>/dev/null || true
    systemd-run --quiet --unit=opsbook-challtestsrv pebble-challtestsrv -defaultIPv4 ${lb_ip} -defaultIPv6 '' \
      -dns01 127.0.0.1:8053 -http01 '' -https01 '' -tlsalpn01 '' -management 127.0.0.1:8055
    systemd-run --quiet --unit=opsbook-pebble --setenv=PEBBLE_VA_NOSLEEP=1 --setenv=PEBBLE_WFE_NONCEREJECT=0 \
      pebble -config ${conf}/pebble.json -dnsserver 127.0.0.1:8053
    for i in \$(seq 50); do
      curl -sf --cacert listener.pem ${directory} >/dev/null && exit 0
      sleep 0.2
    done
    journalctl -u opsbook-pebble --no-pager | tail -20
    exit 1
  " || die "pebble did not answer at ${directory}"
  in_host lb1 mkdir -p "${conf}"
  in_host "${acme_host}" cat "${conf}/listener.pem" | in_host lb1 sh -c "cat > ${conf}/pebble-listener.pem"
  mkdir -p "${state_dir}"
  in_host "${acme_host}" curl -sf --cacert "${conf}/listener.pem" "https://${acme_host}:15000/roots/0" \
    > "${state_dir}/pebble-root.pem"
  log "pebble answers at ${directory} (challenges go to lb1, ${lb_ip}); its root is in ${state_dir}/pebble-root.pem"
  echo "${directory}"
}

stop() {
  in_host "${acme_host}" sh -c "systemctl stop opsbook-pebble.service opsbook-challtestsrv.service 2>/dev/null;
    systemctl reset-failed opsbook-pebble.service opsbook-challtestsrv.service 2>/dev/null; rm -rf ${conf}" || true
  rm -f "${state_dir}/pebble-root.pem"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) die "usage: $0 start|stop" ;;
esac
