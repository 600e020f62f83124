#!/bin/sh
# Builds the demo boot payload into a boot dir:
#   vmlinuz    the kernel of Debian's linux-image-amd64, unpacked from its .deb
#   initrd.gz  a busybox initramfs whose /init prints
#              "PXED-DEMO-BOOTED cmdline: <contents of /proc/cmdline>" and powers off.
# The kernel .deb (~70 MB) is cached in $PXED_CACHE (default ~/.cache/pxed), never in the repo.
# Usage: boot-images/build-demo.sh [OUT_DIR]   (default: boot-images/out). Needs root for mknod.
set -eu
out=${1:-$(dirname "$0")/out}
cache=${PXED_CACHE:-${HOME:-/root}/.cache/pxed}
mkdir -p "$out" "$cache"

need() { # package, file that proves it is installed
    if [ ! -e "$2" ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$1" >&2
    fi
}
need busybox-static /bin/busybox
need cpio /usr/bin/cpio
if ! /bin/busybox --list | grep -qx poweroff; then
    echo "build-demo: /bin/busybox lacks poweroff; install busybox-static" >&2
    exit 1
fi

# --- kernel ---------------------------------------------------------------------------
if [ ! -s "$out/vmlinuz" ]; then
    pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
    if [ -z "$pkg" ]; then
        apt-get update -q >&2
        pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
    fi
    [ -n "$pkg" ] || { echo "build-demo: cannot find the package behind linux-image-amd64" >&2; exit 1; }
    deb=$(ls "$cache/${pkg}"_*.deb 2>/dev/null | head -n1 || true)
    if [ -z "$deb" ]; then
        (cd "$cache" && apt-get download "$pkg" >&2)
        deb=$(ls "$cache/${pkg}"_*.deb | head -n1)
    fi
    tmp=$(mktemp -d)
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp" --wildcards './boot/vmlinuz-*'
    install -m 0644 "$tmp"/boot/vmlinuz-* "$out/vmlinuz"
    rm -rf "$tmp"
    echo "build-demo: kernel from $(basename "$deb") -> $out/vmlinuz"
fi

# --- initramfs ------------------------------------------------------------------------
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin" "$root/dev" "$root/proc" "$root/sys"
cp /bin/busybox "$root/bin/busybox"
mknod -m 600 "$root/dev/console" c 5 1
mknod -m 666 "$root/dev/null" c 1 3
cat > "$root/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
echo "PXED-DEMO-BOOTED cmdline: $(/bin/busybox cat /proc/cmdline)"
/bin/busybox sync
/bin/busybox poweroff -f
INIT
chmod 755 "$root/init"
(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) | gzip -9 > "$out/initrd.gz"
echo "build-demo: busybox initramfs -> $out/initrd.gz ($(wc -c < "$out/initrd.gz") bytes)"
