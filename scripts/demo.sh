#!/usr/bin/env bash
# make demo: the whole stack on loopback — a private libvirtd with test-driver
# VMs, sample backup jobs, vmhost_exporter, Prometheus with the shipped rules
# and Alertmanager. Prints the URLs; Ctrl-C stops everything and removes the
# temp dir. Needs root (libvirtd), like `make test`.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
exporter_addr=${DEMO_EXPORTER_ADDR:-127.0.0.1:19851}
prometheus_addr=${DEMO_PROMETHEUS_ADDR:-127.0.0.1:19090}
alertmanager_addr=${DEMO_ALERTMANAGER_ADDR:-127.0.0.1:19093}

"$root/scripts/install-test-deps.sh"
make -s -C "$root" build

work=$(mktemp -d /tmp/vmhost-demo.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() {
  trap - EXIT INT TERM
  echo "demo: stopping"
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
  echo "demo: stopped, $work removed"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A private libvirtd: sockets in the temp dir, and its QEMU driver state in
# private copies of libvirt's fixed directories, bind-mounted in a mount
# namespace of its own (REQUIREMENTS §6), so the host's stay untouched. Its
# own PID namespace ends with it; its own network namespace keeps it off
# the host's network.
mkdir -p "$work/run" "$work/libvirt/etc" "$work/libvirt/run" "$work/libvirt/lib/qemu" "$work/libvirt/cache" "$work/libvirt/log"
for f in /etc/libvirt/*.conf; do [ -f "$f" ] && cp "$f" "$work/libvirt/etc/"; done
printf 'stdio_handler = "file"\ncgroup_controllers = [ ]\nsecurity_driver = "none"\n' >>"$work/libvirt/etc/qemu.conf"
cat >"$work/libvirtd.conf" <<CONF
unix_sock_dir = "$work/run"
auth_unix_rw = "none"
auth_unix_ro = "none"
unix_sock_rw_perms = "0777"
CONF
binds=""
for d in etc:/etc/libvirt run:/run/libvirt lib:/var/lib/libvirt cache:/var/cache/libvirt log:/var/log/libvirt; do
  binds="$binds mount --bind '$work/libvirt/${d%%:*}' '${d#*:}' &&"
done
unshare --mount --propagation private --pid --fork --kill-child --mount-proc --net \
  sh -c "$binds exec libvirtd -f '$work/libvirtd.conf' -p '$work/libvirtd.pid'" >"$work/libvirtd.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -S "$work/run/libvirt-sock-ro" ] && break; sleep 0.1; done
cp "$root/collector/libvirt/testdata/node.xml" "$work/node.xml"

# Sample backups: two dated kvm_backup.sh sets (the newest holding web1 and
# db1), a restore log, and in-guest dumps of which the newest is 3 days old.
for d in 2 1; do
  set_dir="$work/backup/kvm/$(date -d "-$d day" +%F)"
  mkdir -p "$set_dir/vm_xml" "$set_dir/images"
  for vm in web1 db1; do echo "<domain><name>$vm</name></domain>" >"$set_dir/vm_xml/$vm.xml"; done
  truncate -s 64M "$set_dir/images/web1.img"
  ts=$(date -d "-$d day" '+%F 02:00:00')
  printf '%s - === KVM ホストバックアップ開始 ===\n%s - [5/5] バックアップ完了しました\n' "$ts" "$ts" >"$set_dir/backup.log"
done
printf '%s - === KVM ホスト復元開始 ===\n%s - 復元完了。必要であれば再起動してください。\n' \
  "$(date -d '-40 day' '+%F 10:00:00')" "$(date -d '-40 day' '+%F 10:20:00')" >"$work/backup/kvm_restore.log"
mkdir -p "$work/backup/mysql"
echo dump | gzip >"$work/backup/mysql/app-$(date -d '-3 day' +%F).sql.gz"
touch -d '-3 day' "$work/backup/mysql/"*.sql.gz
cat >"$work/backup.yml" <<CONF
jobs:
  - name: kvm-host
    type: dated_dir
    path: $work/backup/kvm
    max_age: 8d
  - name: restore-test
    type: restore_log
    log_file: $work/backup/kvm_restore.log
    max_age: 35d
  - name: mysql-dumps
    type: file_glob
    glob: $work/backup/mysql/*.sql.gz
    max_age: 26h
CONF

"$root/vmhost_exporter" --web.listen-address="$exporter_addr" \
  --libvirt.socket="$work/run/libvirt-sock-ro" --libvirt.uri="test://$work/node.xml" \
  --backup.config-file="$work/backup.yml" --backup.scan-interval=30s >"$work/exporter.log" 2>&1 &
pids+=($!)

cat >"$work/alertmanager.yml" <<CONF
route:
  receiver: demo
  group_by: ['alertname', 'instance']
  group_wait: 10s
receivers:
  - name: demo
CONF
prometheus-alertmanager --config.file="$work/alertmanager.yml" --storage.path="$work/alertmanager" \
  --web.listen-address="$alertmanager_addr" --cluster.listen-address= >"$work/alertmanager.log" 2>&1 &
pids+=($!)

cat >"$work/prometheus.yml" <<CONF
global:
  scrape_interval: 15s
  evaluation_interval: 15s
rule_files:
  - $root/rules/*.yml
alerting:
  alertmanagers:
    - static_configs:
        - targets: ['$alertmanager_addr']
scrape_configs:
  - job_name: vmhost
    static_configs:
      - targets: ['$exporter_addr']
CONF
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/prometheus" \
  --web.listen-address="$prometheus_addr" >"$work/prometheus.log" 2>&1 &
pids+=($!)

for url in "http://$exporter_addr/metrics" "http://$prometheus_addr/-/ready" "http://$alertmanager_addr/-/ready"; do
  for _ in $(seq 150); do curl -fsS -o /dev/null "$url" 2>/dev/null && break; sleep 0.2; done
  curl -fsS -o /dev/null "$url" || { echo "demo: $url does not answer; logs in $work" >&2; exit 1; }
done

cat <<MSG
demo: running (logs and data in $work)
  exporter      http://$exporter_addr/metrics
  Prometheus    http://$prometheus_addr/alerts   (shipped rules loaded)
  Alertmanager  http://$alertmanager_addr/
The test-driver VMs include a crashed and a paused one, the restore test is
40 days old and the newest dump 3 days: their alerts fire within minutes.
Press Ctrl-C to stop.
MSG
wait "${pids[@]}"
