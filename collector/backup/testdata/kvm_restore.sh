#!/bin/bash
# kvm_restore.sh from the operator's notes, unchanged in its logic; the
# backup set, the restore targets and the log come from the environment.

# バックアップ元（変更してください）
BACKUP_DIR="${BACKUP_DIR:-/backup/kvm/2025-05-28}"
LOGFILE="${LOGFILE:-/var/log/kvm_restore.log}"
VIRSH="${VIRSH:-virsh}"
DST_LIBVIRT="${DST_LIBVIRT:-/etc/libvirt}"
DST_IMAGES="${DST_IMAGES:-/var/lib/libvirt/images}"
DST_SYSCONFIG="${DST_SYSCONFIG:-/etc/sysconfig}"
DST_ETC="${DST_ETC:-/etc}"

log() {
  echo "$(date '+%F %T') - $1" | tee -a "$LOGFILE"
}

log "=== KVM ホスト復元開始 ==="

# 1. libvirt設定復元
log "[1/4] libvirt設定を復元中..."
cp -a "$BACKUP_DIR/libvirt"/* "$DST_LIBVIRT/"

# 2. VM定義の再インポート
log "[2/4] VM定義を再インポート中..."
for xml in "$BACKUP_DIR/vm_xml"/*.xml; do
  $VIRSH define "$xml"
done

# 3. 仮想ディスクの復元
log "[3/4] 仮想ディスクイメージを復元中..."
rsync -a --sparse "$BACKUP_DIR/images/" "$DST_IMAGES/"

# 4. ネットワーク設定復元（再起動必要）
log "[4/4] ネットワーク設定など復元中..."
cp -a "$BACKUP_DIR/etc/network-scripts" "$DST_SYSCONFIG/"
cp -a "$BACKUP_DIR/etc/hosts" "$DST_ETC/"
cp -a "$BACKUP_DIR/etc/fstab" "$DST_ETC/"
cp -a "$BACKUP_DIR/etc/firewalld" "$DST_ETC/" 2>/dev/null

log "復元完了。必要であれば再起動してください。"
