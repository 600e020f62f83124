#!/bin/bash
# Demo: builds pxed, makes a throwaway network namespace with a bridge br1, starts pxed on it,
# network-boots a QEMU VM (MAC de:00:00:00:00:de) from it and prints the VM's console line
# proving it booted the kernel of its profile. Removes everything it made on exit.
#
# Usage: sudo scripts/demo.sh [bios|uefi|secureboot]      (default: bios)
#   bios        SeaBIOS with QEMU's iPXE NIC ROM: iPXE script, kernel over HTTP
#   uefi        OVMF's own PXE: ipxe.efi over TFTP, then iPXE
#   secureboot  OVMF with Secure Boot enforced and Microsoft's keys (KubeVirt's default UEFI
#               VM): Debian's signed shim, then GRUB, then Debian's signed kernel; the console
#               shows "Secure boot enabled"
# Needs: root, cargo. Installs the Debian packages it needs (qemu-system-x86, ovmf, ipxe,
# busybox-static, cpio) when they are missing.
set -euo pipefail
firmware=${1:-bios}
case "$firmware" in
    bios|uefi|secureboot) ;;
    *) echo "demo: firmware must be bios, uefi or secureboot, not $firmware" >&2; exit 2 ;;
esac
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
[ "$(id -u)" = 0 ] || { echo "demo: needs root (network namespaces, taps): sudo $0 $*" >&2; exit 1; }

"$repo/scripts/install-deps.sh" >&2
cargo build --release --quiet
boot="$repo/boot-images/out"
sh boot-images/fetch-ipxe.sh "$boot" >&2
sh boot-images/build-demo.sh "$boot" >&2
[ "$firmware" != secureboot ] || PXED_SIGNED_ARCHES=amd64 sh boot-images/fetch-signed.sh "$boot" >&2

# Remove namespaces left by a crashed demo (their owner pid is in the name).
for old in $(ip netns list | awk '/^pxed-demo-[0-9]+/ {print $1}'); do
    kill -0 "${old#pxed-demo-}" 2>/dev/null || ip netns delete "$old" 2>/dev/null || true
done
ns=pxed-demo-$$
work=$(mktemp -d)
pxed_pid=
cleanup() {
    [ -n "$pxed_pid" ] && kill "$pxed_pid" 2>/dev/null && wait "$pxed_pid" 2>/dev/null || true
    ip netns delete "$ns" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

ip netns add "$ns"
ip -n "$ns" link set lo up
ip -n "$ns" link add br1 type bridge
ip -n "$ns" addr add 10.123.0.1/24 dev br1
ip -n "$ns" link set br1 up
ip -n "$ns" tuntap add dev tap0 mode tap
ip -n "$ns" link set tap0 master br1 up

cat > "$work/pxed.toml" <<TOML
[server]
interface = "br1"
address = "10.123.0.1"
boot_dir = "$boot"
state_dir = "$work/state"

[dhcp]
subnet = "10.123.0.0/24"
range = ["10.123.0.100", "10.123.0.200"]
router = "10.123.0.1"
lease_time = "1h"

[http]
listen = "0.0.0.0:8080"

[profiles.demo]
kernel = "vmlinuz"
initrd = ["initrd.gz"]
cmdline = "console=ttyS0 panic=1 pxed.demo=hello-from-pxed pxed.host={{ hostname }}"

[hosts."de:00:00:00:00:de"]
profile = "demo"
hostname = "demo-vm"
secure_boot = $([ "$firmware" = secureboot ] && echo true || echo false)
TOML

target/release/pxed check --config "$work/pxed.toml"
ip netns exec "$ns" target/release/pxed serve --config "$work/pxed.toml" 2> "$work/pxed.log" &
pxed_pid=$!
for _ in $(seq 100); do
    grep -q 'http listener ready' "$work/pxed.log" && break
    kill -0 "$pxed_pid" 2>/dev/null || { cat "$work/pxed.log" >&2; exit 1; }
    sleep 0.1
done
echo "demo: pxed is serving on br1 in namespace $ns; booting a $firmware VM (TCG, ~30 s)..." >&2

qemu=(qemu-system-x86_64 -accel tcg -m 512 -nographic -no-reboot -nodefaults -serial stdio
      -netdev tap,id=n0,ifname=tap0,script=no,downscript=no)
if [ "$firmware" = secureboot ]; then
    cp /usr/share/OVMF/OVMF_VARS_4M.ms.fd "$work/vars.fd"
    qemu[4]=1024
    qemu+=(-machine q35,smm=on -global driver=cfi.pflash01,property=secure,value=on
           -drive if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.secboot.fd
           -drive if=pflash,format=raw,file="$work/vars.fd"
           -device virtio-net-pci,netdev=n0,mac=de:00:00:00:00:de,romfile=)
elif [ "$firmware" = uefi ]; then
    cp /usr/share/OVMF/OVMF_VARS_4M.fd "$work/vars.fd"
    qemu+=(-drive if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd
           -drive if=pflash,format=raw,file="$work/vars.fd"
           -device virtio-net-pci,netdev=n0,mac=de:00:00:00:00:de,romfile=)
else
    qemu+=(-device virtio-net-pci,netdev=n0,mac=de:00:00:00:00:de -boot n)
fi
ip netns exec "$ns" timeout 180 "${qemu[@]}" > "$work/console.log" 2>&1 || true
echo "--- pxed log (boot chain) ---"
grep -E 'dhcp reply sent|tftp transfer (finished|aborted)|ipxe script served|grub config served|http request' "$work/pxed.log" | sed 's/^[^ ]* *//' || true
echo "--- VM console ---"
if [ "$firmware" = secureboot ] && ! grep -a 'Secure boot enabled' "$work/console.log"; then
    tail -n 30 "$work/console.log"
    echo "demo: the kernel did not run under Secure Boot" >&2
    exit 1
fi
if grep -a 'PXED-DEMO-BOOTED' "$work/console.log"; then
    exit 0
fi
tail -n 30 "$work/console.log"
echo "demo: the VM did not boot from pxed" >&2
exit 1
