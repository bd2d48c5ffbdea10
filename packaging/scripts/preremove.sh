#!/bin/sh
# Stops the service when the package goes away: dpkg's prerm "remove",
# rpm's %preun with 0 packages left. On an upgrade (prerm "upgrade", %preun
# 1) it keeps the service as it is: the new package's postinstall restarts
# it on the new binary if it runs, and rpm runs this old script after
# that, so a stop here would leave the upgraded service stopped. For dpkg
# it notes that it kept the state, so that the new postinst tells a
# stopped service from one an older prerm stopped.
set -e
case "$1" in
  upgrade)
    touch /run/vmhost-exporter.prerm-kept-state 2>/dev/null || true
    exit 0
    ;;
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
