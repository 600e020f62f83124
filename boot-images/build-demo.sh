#!/bin/sh
# Builds the demo boot payload into a boot dir:
#   vmlinuz    the kernel of Debian's linux-image-amd64 (signed by Debian, so it boots under
#              Secure Boot through shim), unpacked from its .deb
#   initrd.gz  a busybox initramfs whose /init prints
#              "PXED-DEMO-BOOTED cmdline: <contents of /proc/cmdline>" and powers off.
# With ARCH arm64, the same two files for arm64 (linux-image-arm64's kernel, an arm64
# busybox) go in OUT_DIR/arm64/; that needs `dpkg --add-architecture arm64` (done here).
# The .debs (~70 MB a kernel) are cached in $PXED_CACHE (default ~/.cache/pxed), never in
# the repo.
# Usage: boot-images/build-demo.sh [OUT_DIR] [amd64|arm64]   (default: boot-images/out amd64)
# Needs root for mknod.
set -eu
base=${1:-$(dirname "$0")/out}
arch=${2:-amd64}
cache=${PXED_CACHE:-${HOME:-/root}/.cache/pxed}
case "$arch" in
    amd64) out=$base ;;
    arm64) out=$base/arm64 ;;
    *) echo "build-demo: ARCH must be amd64 or arm64, not $arch" >&2; exit 2 ;;
esac
mkdir -p "$out" "$cache"

need() { # package, file that proves it is installed
    if [ ! -e "$2" ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$1" >&2
    fi
}
need cpio /usr/bin/cpio
if [ "$arch" = arm64 ] && ! dpkg --print-foreign-architectures | grep -qx arm64; then
    dpkg --add-architecture arm64
    apt-get update -q >&2
fi

# deb PACKAGE: the cached .deb of PACKAGE for $arch (PACKAGE may carry :arm64), downloaded
# once.
deb() {
    name=${1%%:*}
    found=$(ls "$cache/${name}"_*_"$arch".deb 2>/dev/null | head -n1 || true)
    if [ -z "$found" ]; then
        (cd "$cache" && apt-get download "$1" >&2)
        found=$(ls "$cache/${name}"_*_"$arch".deb | head -n1)
    fi
    echo "$found"
}

# --- kernel ---------------------------------------------------------------------------
if [ ! -s "$out/vmlinuz" ]; then
    meta=linux-image-$arch
    [ "$arch" = amd64 ] || meta=$meta:$arch
    pkg=$(apt-cache depends "$meta" 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
    if [ -z "$pkg" ]; then
        apt-get update -q >&2
        pkg=$(apt-cache depends "$meta" | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
    fi
    [ -n "$pkg" ] || { echo "build-demo: cannot find the package behind $meta" >&2; exit 1; }
    case "$pkg" in *:*) ;; *) [ "$arch" = amd64 ] || pkg=$pkg:$arch ;; esac
    kdeb=$(deb "$pkg")
    tmp=$(mktemp -d)
    dpkg-deb --fsys-tarfile "$kdeb" | tar -x -C "$tmp" --wildcards './boot/vmlinuz-*'
    install -m 0644 "$tmp"/boot/vmlinuz-* "$out/vmlinuz"
    rm -rf "$tmp"
    echo "build-demo: kernel from $(basename "$kdeb") -> $out/vmlinuz"
fi

# --- initramfs ------------------------------------------------------------------------
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin" "$root/dev" "$root/proc" "$root/sys"
if [ "$arch" = amd64 ]; then
    need busybox-static /bin/busybox
    cp /bin/busybox "$root/bin/busybox"
    if ! /bin/busybox --list | grep -qx poweroff; then
        echo "build-demo: /bin/busybox lacks poweroff; install busybox-static" >&2
        exit 1
    fi
else
    bdeb=$(deb busybox-static:arm64)
    tmp=$(mktemp -d)
    dpkg-deb -x "$bdeb" "$tmp"
    cp "$tmp/bin/busybox" "$root/bin/busybox"
    rm -rf "$tmp"
fi
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
echo "build-demo: $arch busybox initramfs -> $out/initrd.gz ($(wc -c < "$out/initrd.gz") bytes)"
