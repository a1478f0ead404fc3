#!/usr/bin/env bash
# The demo: from a fresh machine to the sample application serving through the lab's load
# balancer, in one command. Installs what it needs, builds the images, brings the lab up,
# provisions it, deploys the sample app and prints what the load balancer serves, then backs
# up, drills a restore and runs the health checks with their report.
# The lab stays up afterwards: explore it with `docker exec -it opsbook-lab-app1 bash`,
# remove it with `scripts/lab.sh down`.
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "${OPSBOOK_ROOT}"

ref="${OPSBOOK_DEMO_REF:-v1}"
port="${OPSBOOK_LAB_HTTP_PORT:-8080}"
started=${SECONDS}

step() { log "== $* ($((SECONDS - started)) s)"; }

step "1/10 controller tools (Debian packages, Python venv)"
scripts/bootstrap.sh
# shellcheck disable=SC1091
source "${OPSBOOK_VENV}/bin/activate"
export ANSIBLE_FORCE_COLOR="${ANSIBLE_FORCE_COLOR:-1}"

step "2/10 lab images and containers (lb1, app1, app2, db1)"
scripts/lab.sh up

step "3/10 sample app: git repository with tags v1..v5 and its wheelhouse"
scripts/lab-artifacts.sh

step "4/10 provision: PostgreSQL, Redis, nginx, app user and units"
ansible-playbook -i inventories/lab playbooks/provision.yml

step "5/10 deploy ${ref}"
ansible-playbook -i inventories/lab playbooks/deploy.yml -e "deploy_ref=${ref}"

step "6/10 what lb1 serves"
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
  *'"status": "ok"'*"HTTP 200") ;;
  *) die "lb1 did not serve a healthy application (see above)" ;;
esac

step "7/10 backup: dump with row counts, media and config, verify, publish, rotate"
ansible-playbook -i inventories/lab playbooks/backup.yml
lab="${OPSBOOK_LAB:-opsbook-lab}"
echo
echo "The backup just published on db1 (its manifest):"
docker exec "${lab}-db1" cat /var/backups/opsbook/journal/latest.json | python3 -c "$(cat <<'PY'
import json, sys
m = json.load(sys.stdin)
print(f"   id {m['id']}: {m['file']}, {m['size']} bytes, sha256 {m['sha256'][:16]}...")
rows = sum(m["tables"].values())
during = " while pg_dump wrote it" if m["verification"].get("during_dump") else ""
print(f"   verified at level {m['verification']['level']}{during}; {len(m['tables'])} tables, {rows} rows; release {m['release']}")
print("   with " + ", ".join(f"{k} ({v['size']} bytes)" for k, v in sorted(m.get("files", {}).items())))
PY
)"
echo

step "8/10 restore drill: that backup restored into a scratch database, counted, dropped"
ansible-playbook -i inventories/lab playbooks/restore.yml -e restore_mode=drill | tee "${OPSBOOK_CACHE}/demo-drill.log"
echo
grep -o 'Drill: backup [^"]*' "${OPSBOOK_CACHE}/demo-drill.log" | sed 's/^/   /'
echo
step "9/10 health: the daily checks on every host, judged against the seeds' thresholds"
reports="${OPSBOOK_CACHE}/reports"
ansible-playbook -i inventories/lab playbooks/health.yml -e "maintenance_report_dir=${reports}" >"${OPSBOOK_CACHE}/demo-health.log" \
  || { tail -40 "${OPSBOOK_CACHE}/demo-health.log" >&2; die "health.yml failed (log: ${OPSBOOK_CACHE}/demo-health.log)"; }
python3 - "$(ls -t "${reports}"/health-*.json | head -n 1)" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
c = r["counts"]
print(f"   health report: {c['critical']} critical, {c['warning']} warning, {c['unknown']} unknown, {c['ok']} ok")
for f in r["findings"]:
    if f["check"] in ("service", "app health", "health through the load balancer", "database", "queue depth"):
        value = "" if f["metric"] == "failed" else f" {f['value']} {f['unit']}"
        print(f"   {f['level']:<8} {f['host']:<5} {f['check']}: {f['subject']}{value}")
print(f"   page: {r['html']}")
PY
echo

step "10/10 blue-green: a second app (journal_bg) on the lab, two slots per app host, lb1 port 8081"
bg=(-i inventories/lab_bg)
bg_log="${OPSBOOK_CACHE}/demo-blue-green.log"
: >"${bg_log}"
bg_run() {
  ansible-playbook "${bg[@]}" "$@" >>"${bg_log}" 2>&1 || { tail -40 "${bg_log}" >&2; die "ansible-playbook $* failed (log: ${bg_log})"; }
}
bg_serves() {
  docker exec "${lab}-lb1" curl -s --max-time 5 http://127.0.0.1:8081/version/ \
    | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["version"])'
}
bg_active() { docker exec "${lab}-lb1" cat /etc/opsbook/journal_bg-active-slot; }
bg_run playbooks/provision.yml
bg_run playbooks/blue_green.yml -e deploy_ref=v1
echo "   v1 deployed: lb1:8081 serves $(bg_serves) from the $(bg_active) slot"
lb_ip="$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}' "${lab}-lb1" | awk '{print $1}')"
python3 tests/lab/loadgen.py --url "http://${lb_ip}:8081/version/" --seconds 100000 --rate 50 >"${OPSBOOK_CACHE}/demo-bg-load.json" &
load=$!
bg_run playbooks/blue_green.yml -e deploy_ref=v2
kill -TERM "${load}"; wait "${load}" || true
echo "   v2 to the idle slot, switched under load: lb1:8081 serves $(bg_serves) from the $(bg_active) slot"
python3 - "${OPSBOOK_CACHE}/demo-bg-load.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
print(f"   requests during the switch: {c['sent']} sent, {c['failed']} failed, by release: {c['versions']}")
PY
bg_run playbooks/blue_green_switch.yml
echo "   switched back: lb1:8081 serves $(bg_serves) from the $(bg_active) slot (the other slot keeps running)"
echo

log "demo done in $((SECONDS - started)) s: the lab serves ${ref} healthy through lb1; backed up, verified and drilled; health checked; blue-green switched and back"
