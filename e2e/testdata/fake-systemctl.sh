#!/bin/sh
# A test double of systemctl (and of Debian's deb-systemd-invoke and
# deb-systemd-helper, links to this file) for the package scripts in a
# sandbox where no systemd runs: it logs every call to $STATE/calls and
# keeps the service's state in files, $STATE/active ("running <version of
# the binary it started>" or "stopped") and $STATE/enabled.
STATE=/run/fake-systemd
mkdir -p "$STATE"
echo "$(basename "$0") $*" >>"$STATE/calls"

start() {
  echo "running $(/usr/bin/vmhost_exporter --version 2>&1 | head -n 1)" >"$STATE/active"
}

case "$(basename "$0")" in
  deb-systemd-invoke) exec systemctl "$@" ;;
  deb-systemd-helper)
    case "$1" in
      enable) touch "$STATE/enabled" ;;
      disable | purge | mask) rm -f "$STATE/enabled" ;;
    esac
    exit 0
    ;;
esac

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
  enable) touch "$STATE/enabled" ;;
  disable) rm -f "$STATE/enabled" ;;
  is-enabled) [ -e "$STATE/enabled" ] || exit 1 ;;
  is-active) grep -q '^running' "$STATE/active" 2>/dev/null || exit 3 ;;
  daemon-reload) ;;
  *) echo "fake systemctl: $verb not faked" >&2; exit 1 ;;
esac
