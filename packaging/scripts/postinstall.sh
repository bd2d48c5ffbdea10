#!/bin/sh
# Creates the service user (sysusers.d file of the package), then enables
# and starts the service where systemd runs, as Debian does for daemons
# (through deb-systemd-invoke where present, so policy-rc.d is honoured).
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
  if command -v deb-systemd-invoke >/dev/null 2>&1; then
    deb-systemd-helper enable vmhost_exporter.service >/dev/null || true
    deb-systemd-invoke restart vmhost_exporter.service >/dev/null || true
  else
    systemctl enable vmhost_exporter.service >/dev/null || true
    systemctl restart vmhost_exporter.service >/dev/null || true
  fi
fi
