#!/bin/sh
# A test double of systemctl for the package scripts in a sandbox where no
# systemd runs: it logs every call to $STATE/calls and keeps the service's
# state in $STATE/active ("running <version of the binary it started>" or
# "stopped"). What works without a running systemd, enablement (links
# under /etc/systemd/system), goes to the real systemctl, kept at $REAL:
# in offline mode, as in a chroot, since /run/systemd/system exists here
# and it would otherwise look for systemd's bus. Debian's
# deb-systemd-invoke and deb-systemd-helper are the real ones and call
# this.
STATE=/run/fake-systemd
REAL=/usr/lib/fake-systemd/systemctl
mkdir -p "$STATE"
echo "$(basename "$0") $*" >>"$STATE/calls"

start() {
  echo "running $(/usr/bin/vmhost_exporter --version 2>&1 | head -n 1)" >"$STATE/active"
}

verb=
for a in "$@"; do
  case "$a" in
    -*) ;;
    *) [ -n "$verb" ] || verb=$a ;;
  esac
done
case "$verb" in
  start) grep -q '^running' "$STATE/active" 2>/dev/null || start ;;
  restart) start ;;
  try-restart) if grep -q '^running' "$STATE/active" 2>/dev/null; then start; fi ;;
  stop) echo stopped >"$STATE/active" ;;
  is-active) grep -q '^running' "$STATE/active" 2>/dev/null || exit 3 ;;
  daemon-reload) ;;
  "" | enable | disable | reenable | preset | is-enabled | mask | unmask) SYSTEMD_OFFLINE=1 exec "$REAL" "$@" ;;
  *)
    echo "fake systemctl: $verb not faked" >&2
    exit 1
    ;;
esac
