#!/bin/sh
# Creates the service user (sysusers.d file of the package), then, where
# systemd runs, enables and starts the service on first install and, on an
# upgrade, restarts it on the new binary only if it ran, leaving the
# operator's choice alone: a disabled service stays disabled, a stopped one
# stopped. dpkg passes "configure" and the version configured before (empty
# on first install), rpm the number of the package's versions installed
# (1 install, 2 upgrade). Debian goes through deb-systemd-helper and
# deb-systemd-invoke (policy-rc.d honoured), as dh_installsystemd does.
set -e

if command -v systemd-sysusers >/dev/null 2>&1; then
  systemd-sysusers vmhost_exporter.conf
elif ! getent passwd vmhost_exporter >/dev/null; then
  groupadd --system vmhost_exporter 2>/dev/null || true
  useradd --system --gid vmhost_exporter --no-create-home --home-dir /nonexistent \
    --shell /usr/sbin/nologin vmhost_exporter
fi

unit=vmhost_exporter.service
# Left by preremove.sh when dpkg upgrades with it as the old prerm, which
# keeps the service as it was; prerms up to 0.1.0 stopped it and left none.
kept=/run/vmhost-exporter.prerm-kept-state

if [ "$1" = configure ] && command -v deb-systemd-helper >/dev/null 2>&1; then
  # was-enabled is true where the package was never configured: first
  # install enables; an upgrade keeps the operator's enablement (and
  # refreshes the links and deb-systemd-helper's state for purge).
  if deb-systemd-helper --quiet was-enabled "$unit"; then
    deb-systemd-helper enable "$unit" >/dev/null || true
  else
    deb-systemd-helper update-state "$unit" >/dev/null || true
  fi
  if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null || true
    if [ -z "$2" ]; then
      deb-systemd-invoke start "$unit" >/dev/null || true
    elif [ -e "$kept" ]; then
      deb-systemd-invoke try-restart "$unit" >/dev/null || true
    else
      # The old prerm stopped it, whether it ran is lost: start it where
      # enabled (deb-systemd-invoke starts no disabled unit).
      deb-systemd-invoke restart "$unit" >/dev/null || true
    fi
  fi
  rm -f "$kept"
elif [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null || true
  if [ "$1" = 1 ] || { [ "$1" = configure ] && [ -z "$2" ]; }; then
    systemctl enable "$unit" >/dev/null || true
    systemctl start "$unit" >/dev/null || true
  else
    systemctl try-restart "$unit" >/dev/null || true
  fi
  rm -f "$kept"
fi
