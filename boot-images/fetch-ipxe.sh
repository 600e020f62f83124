#!/bin/sh
# Copies the iPXE first stages from Debian's `ipxe` package into a boot dir, under the
# names pxed expects by default: undionly.kpxe (BIOS), ipxe.efi and snponly.efi (x86-64 UEFI).
# Usage: boot-images/fetch-ipxe.sh [OUT_DIR]   (default: boot-images/out)
set -eu
out=${1:-$(dirname "$0")/out}
if [ ! -f /usr/lib/ipxe/undionly.kpxe ] || [ ! -f /usr/lib/ipxe/ipxe.efi ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "fetch-ipxe: Debian package ipxe is missing; run: sudo apt-get install ipxe" >&2
        exit 1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q ipxe >&2
fi
mkdir -p "$out"
for f in undionly.kpxe ipxe.efi snponly.efi; do
    install -m 0644 "/usr/lib/ipxe/$f" "$out/$f"
done
echo "fetch-ipxe: $(dpkg-query -W -f '${Package} ${Version}' ipxe) -> $out: undionly.kpxe ipxe.efi snponly.efi"
