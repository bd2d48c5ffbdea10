#!/bin/sh
# Stops the service before its files go; an upgrade restarts it in
# postinstall.
set -e
if [ -d /run/systemd/system ]; then
  systemctl stop vmhost_exporter.service >/dev/null 2>&1 || true
fi
