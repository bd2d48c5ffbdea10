#!/bin/sh
# rpm only, after the whole transaction: on an upgrade rpm runs the old
# package's %preun after the new one's %post, and packages up to 0.1.0
# stopped the service there. Starting it again here, where it is enabled,
# leaves a running service running whichever version is upgraded from
# (start is nothing when it runs already).
if [ -d /run/systemd/system ] && systemctl --quiet is-enabled vmhost_exporter.service 2>/dev/null; then
  systemctl start vmhost_exporter.service >/dev/null 2>&1 || true
fi
exit 0
