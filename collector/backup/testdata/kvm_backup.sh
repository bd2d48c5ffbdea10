#!/bin/bash
# kvm_backup.sh from the operator's notes (REQUIREMENTS §1), unchanged in its
# logic; only the paths come from the environment so the tests can run it in
# a temp dir, and virsh gets its connection URI from $VIRSH.

# バックアップ先（変更してください）
BACKUP_BASE="${BACKUP_BASE:-/backup/kvm}"
DATE="${DATE:-$(date +%F)}"
BACKUP_DIR="$BACKUP_BASE/$DATE"
VIRSH="${VIRSH:-virsh}"
SRC_LIBVIRT="${SRC_LIBVIRT:-/etc/libvirt}"
SRC_IMAGES="${SRC_IMAGES:-/var/lib/libvirt/images}"
SRC_NETWORK="${SRC_NETWORK:-/etc/sysconfig/network-scripts}"
SRC_ETC="${SRC_ETC:-/etc}"

# ログファイル
LOGFILE="$BACKUP_DIR/backup.log"
mkdir -p "$BACKUP_DIR"

log() {
  echo "$(date '+%F %T') - $1" | tee -a "$LOGFILE"
}

log "=== KVM ホストバックアップ開始 ==="

# 1. libvirtの設定
log "[1/5] libvirt設定を保存中..."
mkdir -p "$BACKUP_DIR/libvirt"
cp -a "$SRC_LIBVIRT" "$BACKUP_DIR/libvirt"

# 2. VM定義情報（XML形式）を保存
log "[2/5] 各VMの定義（XML）を保存中..."
mkdir -p "$BACKUP_DIR/vm_xml"
for vm in $($VIRSH list --all --name); do
  $VIRSH dumpxml "$vm" > "$BACKUP_DIR/vm_xml/${vm}.xml"
done

# 3. VMディスクイメージをバックアップ
log "[3/5] 仮想ディスクイメージをバックアップ中..."
mkdir -p "$BACKUP_DIR/images"
rsync -a --sparse "$SRC_IMAGES/" "$BACKUP_DIR/images/"

# 4. ネットワーク設定など
log "[4/5] ネットワーク設定などを保存中..."
mkdir -p "$BACKUP_DIR/etc"
cp -a "$SRC_NETWORK" "$BACKUP_DIR/etc/"
cp -a "$SRC_ETC/hosts" "$BACKUP_DIR/etc/"
cp -a "$SRC_ETC/fstab" "$BACKUP_DIR/etc/"
cp -a "$SRC_ETC/firewalld" "$BACKUP_DIR/etc/" 2>/dev/null

# 5. 完了
log "[5/5] バックアップ完了しました"
