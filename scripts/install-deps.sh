#!/bin/sh
# Installs the Debian packages pxed's demo, tests and benchmarks use, if any is missing.
set -eu
pkgs="python3 python3-venv systemd libcap2-bin kea-admin dnsmasq-base isc-dhcp-relay qemu-system-x86 ovmf qemu-system-arm qemu-efi-aarch64 ipxe mtools dosfstools busybox-static cpio atftp udhcpc curl bc iproute2 tcpdump procps podman buildah runc debootstrap"
missing=
for p in $pkgs; do
    dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
done
# npm fetches KubeVirt's API types for deploy/kubernetes/check.py; this machine kind ships
# Node.js with npm, so Debian's npm is only installed where there is none.
command -v npm > /dev/null || missing="$missing npm"
if [ -n "$missing" ]; then
    echo "install-deps: installing$missing" >&2
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
fi
