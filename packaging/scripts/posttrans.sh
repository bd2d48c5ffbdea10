#!/bin/sh
# rpm only, after the whole transaction: on an upgrade rpm runs the old
# package's %preun after the new one's %post, and packages up to 0.1.0
# stopped the service there. Starting it again here, where %pre noted that
# it ran before the upgrade, leaves a running service running whichever
# version is upgraded from, and a stopped one stopped (start is nothing
# when it runs already).
flag=/run/vmhost-exporter.start-after-upgrade
if [ -e "$flag" ]; then
  rm -f "$flag"
  if [ -d /run/systemd/system ]; then
    systemctl start vmhost_exporter.service >/dev/null 2>&1 || true
  fi
fi
exit 0
