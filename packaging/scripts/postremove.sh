#!/bin/sh
# On remove: forget the unit. On purge (deb) the conffiles go with dpkg;
# the service user stays, as Debian policy keeps system users whose files
# may remain elsewhere (logs, backups it was given access to).
set -e
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || true
fi
case "$1" in
  purge)
    if command -v deb-systemd-helper >/dev/null 2>&1; then
      deb-systemd-helper purge vmhost_exporter.service >/dev/null || true
    fi
    rm -f /etc/systemd/system/multi-user.target.wants/vmhost_exporter.service
    rmdir /etc/vmhost_exporter 2>/dev/null || true
    ;;
esac
