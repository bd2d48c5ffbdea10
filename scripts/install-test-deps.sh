#!/usr/bin/env bash
# Installs what the test suite needs on Debian 12 (REQUIREMENTS §6) and
# prepares the host for a private libvirtd. Idempotent: does nothing when
# everything is present. Needs root for apt-get; without root it only
# reports what is missing, so the tests can skip (or fail under CI=true).
set -euo pipefail

# rpm: the package test installs the .rpm in a sandbox as it does the .deb
# (the package starts no service). chromium: the /backups page is checked
# as a person sees it, in headless Chromium (internal/testenv.Chromium).
packages=(libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients
  qemu-system-x86 qemu-utils prometheus prometheus-alertmanager rclone rsync systemd curl logrotate
  rpm chromium)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

# VictoriaMetrics (victoria-metrics, vmagent, vmalert) and node_exporter
# come from Debian's victoria-metrics and prometheus-node-exporter packages,
# unpacked into the repository's cache instead of installed: installing
# them would start services listening on every address of the machine
# (node_exporter's init script starts it on :9100), and the tests start
# their own on loopback.
cache="${VMHOST_CACHE:-$(cd "$(dirname "$0")/.." && pwd)/.cache}"
declare -A unpack_dirs=([victoria-metrics]="$cache/victoria-metrics" [prometheus-node-exporter]="$cache/node-exporter")
declare -A unpack_bins=([victoria-metrics]=usr/bin/vmalert [prometheus-node-exporter]=usr/bin/prometheus-node-exporter)
unpack_missing=()
for p in victoria-metrics prometheus-node-exporter; do
  [ -x "${unpack_dirs[$p]}/${unpack_bins[$p]}" ] || unpack_missing+=("$p")
done

if [ "$(id -u)" != 0 ]; then
  for p in "${unpack_missing[@]}"; do
    echo "install-test-deps: not root; $p missing from ${unpack_dirs[$p]}" >&2
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "install-test-deps: not root; missing packages: ${missing[*]}" >&2
    echo "install-test-deps: run as root or: apt-get install -y ${missing[*]}" >&2
  fi
  exit 0
fi

updated=false
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-test-deps: installing ${missing[*]}"
  apt-get update -qq
  updated=true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ ${#unpack_missing[@]} -gt 0 ]; then
  $updated || apt-get update -qq
  tmp=$(mktemp -d) && chmod 755 "$tmp"
  # apt downloads as its sandbox user _apt, which must be able to write
  # here; otherwise it warns and downloads as root.
  if id _apt >/dev/null 2>&1; then chown _apt "$tmp"; fi
  trap 'rm -rf "$tmp"' EXIT
  for p in "${unpack_missing[@]}"; do
    echo "install-test-deps: unpacking Debian's $p into ${unpack_dirs[$p]}"
    (cd "$tmp" && apt-get download -qq "$p" >/dev/null)
    rm -rf "${unpack_dirs[$p]}" && mkdir -p "${unpack_dirs[$p]}"
    dpkg-deb -x "$tmp/${p}"_*.deb "${unpack_dirs[$p]}"
  done
fi

# The QEMU driver refuses to load without these accounts.
getent group kvm >/dev/null || groupadd -r kvm
getent group libvirt-qemu >/dev/null || groupadd -r libvirt-qemu
id libvirt-qemu >/dev/null 2>&1 || useradd -r -g libvirt-qemu -G kvm -d /var/lib/libvirt -s /usr/sbin/nologin libvirt-qemu

# Test daemons run in mount namespaces of their own with private copies of
# these directories bind-mounted over them (internal/testenv, REQUIREMENTS
# §6): the mount points must exist. They are the empty directories that
# libvirt-daemon-system would create; nothing is ever written into them.
for d in /etc/libvirt /run/libvirt /var/lib/libvirt /var/cache/libvirt /var/log/libvirt; do
  [ -d "$d" ] || mkdir -p -m 0755 "$d"
done
