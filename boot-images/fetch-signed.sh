#!/bin/sh
# Copies the signed first stages of the GRUB chains from Debian's packages into a boot dir:
#   shimx64.efi   shim-signed's shimx64.efi.signed (signed by Microsoft's UEFI CA): the x86-64
#                 Secure Boot first stage; it loads grubx64.efi from the same directory
#   grubx64.efi   grub-efi-amd64-signed's grubnetx64.efi.signed (signed by Debian)
#   grubaa64.efi  grub-efi-arm64-signed's grubnetaa64.efi.signed: the arm64 UEFI first stage
# Both GRUBs start with $prefix = (tftp,SERVER)/grub and ask pxed for grub/grub.cfg over TFTP
# (they have no HTTP module). The packages are only downloaded (apt-get download) and
# unpacked, never installed: installing them would set up this machine's own boot loader.
# The .debs are cached in $PXED_CACHE (default ~/.cache/pxed). The arm64 GRUB needs
# `dpkg --add-architecture arm64`, which this script does (as root) when it is missing;
# PXED_SIGNED_ARCHES=amd64 leaves arm64 (and that change to dpkg) out.
# With ESP_IMG, it also writes a test fixture there: a FAT disk image whose EFI/BOOT holds the
# same shim (as BOOTX64.EFI) and Debian's signed disk GRUB (grubx64.efi.signed), and whose
# EFI/debian/grub.cfg prints PXED-DISK-BOOTED and powers off: the disk a Secure Boot VM
# falls through to (needs mtools and dosfstools).
# Usage: boot-images/fetch-signed.sh [OUT_DIR] [ESP_IMG]   (default: boot-images/out)
set -eu
out=${1:-$(dirname "$0")/out}
cache=${PXED_CACHE:-${HOME:-/root}/.cache/pxed}
mkdir -p "$out" "$cache"

arches=${PXED_SIGNED_ARCHES:-amd64 arm64}
case " $arches " in *" arm64 "*) want_arm64=1 ;; *) want_arm64= ;; esac
if [ -n "$want_arm64" ] && ! dpkg --print-foreign-architectures | grep -qx arm64; then
    [ "$(id -u)" = 0 ] || { echo "fetch-signed: needs root once, for: dpkg --add-architecture arm64" >&2; exit 1; }
    dpkg --add-architecture arm64
    apt-get update -q >&2
fi

# fetch PACKAGE[:ARCH]: prints the cached .deb of the candidate version, downloading it once.
fetch() {
    version=$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2}')
    if [ -z "$version" ] || [ "$version" = "(none)" ]; then
        apt-get update -q >&2
        version=$(apt-cache policy "$1" | awk '/Candidate:/ {print $2}')
    fi
    [ -n "$version" ] && [ "$version" != "(none)" ] || { echo "fetch-signed: no package $1" >&2; exit 1; }
    name=${1%%:*}
    file_version=$(echo "$version" | sed 's/:/%3a/')
    deb=$(ls "$cache/${name}_${file_version}_"*.deb 2>/dev/null | head -n1 || true)
    if [ -z "$deb" ]; then
        (cd "$cache" && apt-get download "$1=$version" >&2)
        deb=$(ls "$cache/${name}_${file_version}_"*.deb | head -n1)
    fi
    echo "$deb"
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pkgs="shim-signed grub-efi-amd64-signed"
[ -z "$want_arm64" ] || pkgs="$pkgs grub-efi-arm64-signed:arm64"
for pkg in $pkgs; do
    deb=$(fetch "$pkg")
    dpkg-deb -x "$deb" "$tmp"
    echo "fetch-signed: $(basename "$deb")" >&2
done
install -m 0644 "$tmp/usr/lib/shim/shimx64.efi.signed" "$out/shimx64.efi"
install -m 0644 "$tmp/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed" "$out/grubx64.efi"
files="shimx64.efi grubx64.efi"
if [ -n "$want_arm64" ]; then
    install -m 0644 "$tmp/usr/lib/grub/arm64-efi-signed/grubnetaa64.efi.signed" "$out/grubaa64.efi"
    files="$files grubaa64.efi"
fi
echo "fetch-signed: -> $out: $files"

if [ -n "${2:-}" ]; then
    esp=$2
    printf 'echo PXED-DISK-BOOTED\nhalt\n' > "$tmp/grub.cfg"
    rm -f "$esp"
    mkfs.fat -C -n PXEDESP "$esp" 33792 > /dev/null
    mmd -i "$esp" ::/EFI ::/EFI/BOOT ::/EFI/debian
    mcopy -i "$esp" "$tmp/usr/lib/shim/shimx64.efi.signed" ::/EFI/BOOT/BOOTX64.EFI
    mcopy -i "$esp" "$tmp/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed" ::/EFI/BOOT/grubx64.efi
    mcopy -i "$esp" "$tmp/grub.cfg" ::/EFI/debian/grub.cfg
    echo "fetch-signed: Secure Boot marker disk -> $esp"
fi
