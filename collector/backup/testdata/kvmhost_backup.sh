#!/bin/bash
# The first whole-host backup script of the operator's notes, unchanged in
# its logic: it writes /backup/kvmhost-YYYY-MM-DD with the libvirt config
# (domain XMLs in libvirt-config/qemu/), the images directory (rsync without
# a trailing slash: images/images/) and the network scripts, and no log.
# Only the paths come from the environment, so the tests can run it in a
# temp dir.
BACKUP_ROOT="${BACKUP_ROOT:-/backup}"
BACKUP_DIR="$BACKUP_ROOT/kvmhost-${DATE:-$(date +%F)}"
SRC_LIBVIRT="${SRC_LIBVIRT:-/etc/libvirt}"
SRC_IMAGES="${SRC_IMAGES:-/var/lib/libvirt/images}"
SRC_NETWORK="${SRC_NETWORK:-/etc/sysconfig/network-scripts}"

mkdir -p "$BACKUP_DIR"

# VM設定ファイルの保存
cp -a "$SRC_LIBVIRT" "$BACKUP_DIR/libvirt-config"

# VMディスクイメージの保存
rsync -a --sparse "$SRC_IMAGES" "$BACKUP_DIR/images"

# ネットワーク設定など
cp -a "$SRC_NETWORK" "$BACKUP_DIR/network"
