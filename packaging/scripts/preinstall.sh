#!/bin/sh
# rpm's %pre, before anything of the old package runs: on an upgrade
# ($1 >= 2) it notes under /run whether the service runs, for %posttrans,
# which starts it again only then. Packages up to 0.1.0 stop the service in
# their %preun, which rpm runs after the new %post, so the state is lost
# by the time %posttrans runs unless noted here. dpkg runs the old prerm
# before this script; there prerm notes it instead (see preremove.sh).
case "$1" in
  [2-9] | [1-9][0-9]*)
    if [ -d /run/systemd/system ] && systemctl --quiet is-active vmhost_exporter.service 2>/dev/null; then
      touch /run/vmhost-exporter.start-after-upgrade 2>/dev/null || true
    fi
    ;;
esac
exit 0
