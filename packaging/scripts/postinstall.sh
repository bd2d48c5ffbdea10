#!/bin/sh
# Creates the service user (sysusers.d file of the package), then enables
# and (re)starts the service where systemd runs: started on install,
# restarted on the new binary on upgrade. dpkg passes "configure" (there
# through deb-systemd-invoke, so policy-rc.d is honoured), rpm the number of
# the package's versions installed (1 install, 2 upgrade).
set -e

if command -v systemd-sysusers >/dev/null 2>&1; then
  systemd-sysusers vmhost_exporter.conf
elif ! getent passwd vmhost_exporter >/dev/null; then
  groupadd --system vmhost_exporter 2>/dev/null || true
  useradd --system --gid vmhost_exporter --no-create-home --home-dir /nonexistent \
    --shell /usr/sbin/nologin vmhost_exporter
fi

if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null || true
  if [ "$1" = configure ] && command -v deb-systemd-invoke >/dev/null 2>&1; then
    deb-systemd-helper enable vmhost_exporter.service >/dev/null || true
    deb-systemd-invoke restart vmhost_exporter.service >/dev/null || true
  else
    systemctl enable vmhost_exporter.service >/dev/null || true
    systemctl restart vmhost_exporter.service >/dev/null || true
  fi
fi
