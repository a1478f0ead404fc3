#!/usr/bin/env bash
# The demo: from a fresh machine to the sample application serving through the lab's load
# balancer, in one command. Installs what it needs, builds the images, brings the lab up,
# provisions it, deploys the sample app and prints what the load balancer serves.
# The lab stays up afterwards: explore it with `docker exec -it opsbook-lab-app1 bash`,
# remove it with `scripts/lab.sh down`.
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "${OPSBOOK_ROOT}"

ref="${OPSBOOK_DEMO_REF:-v1}"
port="${OPSBOOK_LAB_HTTP_PORT:-8080}"
started=${SECONDS}

step() { log "== $* ($((SECONDS - started)) s)"; }

step "1/6 controller tools (Debian packages, Python venv)"
scripts/bootstrap.sh
# shellcheck disable=SC1091
source "${OPSBOOK_VENV}/bin/activate"
export ANSIBLE_FORCE_COLOR="${ANSIBLE_FORCE_COLOR:-1}"

step "2/6 lab images and containers (lb1, app1, app2, db1)"
scripts/lab.sh up

step "3/6 sample app: git repository with tags v1..v4 and its wheelhouse"
scripts/lab-artifacts.sh

step "4/6 provision: PostgreSQL, Redis, nginx, app user and units"
ansible-playbook -i inventories/lab playbooks/provision.yml

step "5/6 deploy ${ref}"
ansible-playbook -i inventories/lab playbooks/deploy.yml -e "deploy_ref=${ref}"

step "6/6 what lb1 serves"
health="$(curl -s --max-time 10 -w '\nHTTP %{http_code}' "http://127.0.0.1:${port}/health/")"
echo
echo "GET http://127.0.0.1:${port}/health/ through lb1:"
echo "${health}" | head -n -1 | python3 -m json.tool
echo "${health}" | tail -n 1
echo
echo "Four more requests, answered by:"
for _ in 1 2 3 4; do
  curl -s --max-time 5 "http://127.0.0.1:${port}/version/" | python3 -c 'import json,sys; d=json.load(sys.stdin); print("  ", d["hostname"], d["version"])'
done
echo
case "${health}" in
  *'"status": "ok"'*"HTTP 200") log "demo done in $((SECONDS - started)) s: the lab serves ${ref} healthy through lb1" ;;
  *) die "lb1 did not serve a healthy application (see above)" ;;
esac
