#!/bin/sh
# Stops the service when the package goes away: dpkg's prerm "remove",
# rpm's %preun with 0 packages left. On an upgrade (prerm "upgrade", %preun
# 1) it keeps running: the new package's postinstall restarts it on the new
# binary, and rpm runs this old script after that, so a stop here would
# leave the upgraded service stopped.
set -e
case "$1" in
  remove | deconfigure | 0) ;;
  *) exit 0 ;;
esac
if [ -d /run/systemd/system ]; then
  if command -v deb-systemd-invoke >/dev/null 2>&1 && [ "$1" != 0 ]; then
    deb-systemd-invoke stop vmhost_exporter.service >/dev/null 2>&1 || true
  else
    systemctl stop vmhost_exporter.service >/dev/null 2>&1 || true
  fi
fi
# rpm has no postrm "purge": the enablement goes with the package.
if [ "$1" = 0 ]; then
  systemctl --no-reload disable vmhost_exporter.service >/dev/null 2>&1 || true
fi
