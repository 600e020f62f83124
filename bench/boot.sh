#!/bin/bash
# Power-on to initramfs marker for each chain of the firmware matrix, pxed against dnsmasq
# with static files, side by side in one run. Each VM (QEMU, TCG) boots the demo kernel and
# initramfs from boot-images/out and is timed until its console prints PXED-DEMO-BOOTED.
#
#   chain       firmware                                  first stage -> kernel and initrd
#   bios        SeaBIOS + QEMU's iPXE NIC ROM              iPXE script -> HTTP
#   uefi        OVMF's own PXE                             TFTP ipxe.efi -> iPXE -> HTTP
#   secureboot  OVMF, Secure Boot enforced, MS keys        TFTP shim -> GRUB -> TFTP
#   arm64       AAVMF (qemu-system-aarch64 virt)           TFTP GRUB -> TFTP
#
# The peer: dnsmasq (DHCP, TFTP) and busybox httpd (HTTP) serving the same files, with a
# static iPXE script and static grub/grub.cfg that say what pxed renders for the machine.
#
# Usage: sudo bench/boot.sh [ROUNDS=1] [CHAINS="bios uefi secureboot arm64"]
# Needs: root, bc, the boot payload (tests/run builds it: fetch-ipxe.sh, fetch-signed.sh,
# build-demo.sh and build-demo.sh DIR arm64); builds pxed --release.
set -euo pipefail
rounds=${1:-1}
chains=${2:-bios uefi secureboot arm64}
repo=$(cd "$(dirname "$0")/.." && pwd)
[ "$(id -u)" = 0 ] || { echo "bench/boot.sh: needs root" >&2; exit 1; }
boot=$repo/boot-images/out
for f in undionly.kpxe ipxe.efi shimx64.efi grubx64.efi grubaa64.efi vmlinuz initrd.gz arm64/vmlinuz arm64/initrd.gz; do
    [ -s "$boot/$f" ] || { echo "bench/boot.sh: $boot/$f is missing: run tests/run's boot-images steps" >&2; exit 1; }
done
(cd "$repo" && cargo build --release --quiet)
pxed=$repo/target/release/pxed

for old in $(ip netns list | awk '/^pxedboot-[0-9]+/ {print $1}'); do
    pid=${old#pxedboot-}
    kill -0 "$pid" 2>/dev/null || ip netns delete "$old" 2>/dev/null || true
done
ns=pxedboot-$$
work=$(mktemp -d)
pids=()
stop_servers() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    pids=()
}
cleanup() {
    stop_servers
    # A VM still running (an interrupted boot_vm runs in a subshell) goes with its namespace.
    ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null || true
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

mac=de:00:00:00:00:b0
# Consoles of failed boots are kept here.
log_dir=${PXED_BENCH_LOGS:-/tmp/pxed-bench-boot}
mkdir -p "$log_dir"
cmdline() { # chain
    case $1 in
    arm64) echo "console=ttyAMA0 panic=1 pxed.bench=$1" ;;
    *) echo "console=ttyS0 panic=1 pxed.bench=$1" ;;
    esac
}
kernel_of() { [ "$1" = arm64 ] && echo arm64/vmlinuz || echo vmlinuz; }
initrd_of() { [ "$1" = arm64 ] && echo arm64/initrd.gz || echo initrd.gz; }

start_pxed() { # chain
    local sb=false
    [ "$1" = secureboot ] && sb=true
    cat > "$work/pxed.toml" <<TOML
[server]
interface = "br1"
address = "10.123.0.1"
boot_dir = "$boot"
state_dir = "$work/state-$1"
[dhcp]
subnet = "10.123.0.0/24"
range = ["10.123.0.100", "10.123.0.200"]
lease_time = "1h"
[http]
listen = "0.0.0.0:8080"
[admin]
listen = "127.0.0.1:9091"
[profiles.bench]
kernel = "$(kernel_of "$1")"
initrd = ["$(initrd_of "$1")"]
cmdline = "$(cmdline "$1")"
[hosts."$mac"]
profile = "bench"
secure_boot = $sb
TOML
    ip netns exec "$ns" "$pxed" serve --config "$work/pxed.toml" 2> "$work/pxed-$1.log" &
    pids+=($!)
}

start_dnsmasq() { # chain
    local root=$work/static-$1 k i
    k=$(kernel_of "$1"); i=$(initrd_of "$1")
    rm -rf "$root"; mkdir -p "$root/grub" "$root/arm64"
    for f in undionly.kpxe ipxe.efi shimx64.efi grubx64.efi grubaa64.efi "$k" "$i"; do
        ln -s "$boot/$f" "$root/$f"
    done
    # What pxed renders: an iPXE script with HTTP URLs, a GRUB config loading over TFTP.
    printf '#!ipxe\nkernel http://10.123.0.1:8080/%s initrd=%s %s\ninitrd http://10.123.0.1:8080/%s\nboot\n' \
        "$k" "$(basename "$i")" "$(cmdline "$1")" "$i" > "$root/boot.ipxe"
    printf 'set timeout=0\nlinux (tftp,10.123.0.1)/%s %s\ninitrd (tftp,10.123.0.1)/%s\nboot\n' \
        "$k" "$(cmdline "$1")" "$i" > "$root/grub/grub.cfg"
    local efi=ipxe.efi
    [ "$1" = secureboot ] && efi=shimx64.efi
    ip netns exec "$ns" dnsmasq --keep-in-foreground --user=root --no-resolv --port=0 --interface=br1 \
        --bind-interfaces --dhcp-range=10.123.0.100,10.123.0.200,1h \
        --dhcp-leasefile="$work/dnsmasq-$1.leases" --enable-tftp --tftp-root="$root" \
        --dhcp-match=set:ipxe,175 --dhcp-match=set:efi64,option:client-arch,7 \
        --dhcp-match=set:arm64,option:client-arch,11 \
        --dhcp-boot=tag:ipxe,http://10.123.0.1:8080/boot.ipxe \
        --dhcp-boot=tag:!ipxe,tag:efi64,$efi --dhcp-boot=tag:!ipxe,tag:arm64,grubaa64.efi \
        --dhcp-boot=tag:!ipxe,tag:!efi64,tag:!arm64,undionly.kpxe \
        --log-facility="$work/dnsmasq-$1.log" &
    pids+=($!)
    ip netns exec "$ns" busybox httpd -f -p 10.123.0.1:8080 -h "$root" &
    pids+=($!)
}

# boot_vm CHAIN: prints seconds from QEMU's start to the marker, or FAIL.
boot_vm() {
    local chain=$1 console=$work/console.log vars=$work/vars.fd start qemu
    local -a args=(-accel tcg -m 1024 -nographic -no-reboot -nodefaults -serial stdio
        -netdev tap,id=n0,ifname=tap0,script=no,downscript=no)
    case $chain in
    bios) qemu=qemu-system-x86_64; args+=(-device "virtio-net-pci,netdev=n0,mac=$mac,bootindex=1") ;;
    uefi)
        qemu=qemu-system-x86_64; cp /usr/share/OVMF/OVMF_VARS_4M.fd "$vars"
        args+=(-drive if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd
            -drive "if=pflash,format=raw,file=$vars" -device "virtio-net-pci,netdev=n0,mac=$mac,romfile=,bootindex=1") ;;
    secureboot)
        qemu=qemu-system-x86_64; cp /usr/share/OVMF/OVMF_VARS_4M.ms.fd "$vars"
        args+=(-machine q35,smm=on -global driver=cfi.pflash01,property=secure,value=on
            -drive if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.secboot.fd
            -drive "if=pflash,format=raw,file=$vars" -device "virtio-net-pci,netdev=n0,mac=$mac,romfile=,bootindex=1") ;;
    arm64)
        qemu=qemu-system-aarch64; cp /usr/share/AAVMF/AAVMF_VARS.fd "$vars"
        args+=(-machine virt -cpu cortex-a57
            -drive if=pflash,format=raw,readonly=on,file=/usr/share/AAVMF/AAVMF_CODE.fd
            -drive "if=pflash,format=raw,file=$vars" -device "virtio-net-pci,netdev=n0,mac=$mac,romfile=,bootindex=1") ;;
    esac
    : > "$console"
    start=$(date +%s.%N)
    ip netns exec "$ns" timeout 240 "$qemu" "${args[@]}" < /dev/null > "$console" 2>/dev/null &
    local q=$! t alive=1
    # The initramfs powers off right after the marker, so look once more after QEMU exits.
    while [ "$alive" = 1 ]; do
        kill -0 "$q" 2>/dev/null || alive=0
        if grep -aq "PXED-DEMO-BOOTED cmdline:.*pxed.bench=$chain" "$console"; then
            t=$(echo "$(date +%s.%N) - $start" | bc)
            kill "$q" 2>/dev/null; wait "$q" 2>/dev/null || true
            if [ "$chain" = secureboot ] && ! grep -aq "Secure boot enabled" "$console"; then
                echo FAIL-no-secure-boot; return
            fi
            printf '%.1f\n' "$t"; return
        fi
        sleep 0.2
    done
    wait "$q" 2>/dev/null || true
    cp "$console" "$log_dir/$chain-failed-console.log" 2>/dev/null || true
    echo FAIL
}

printf '%-11s %5s %10s %10s %8s\n' chain round pxed_s dnsmasq_s ratio
for chain in $chains; do
    for r in $(seq 1 "$rounds"); do
        start_pxed "$chain"; sleep 0.5
        tp=$(boot_vm "$chain"); stop_servers
        start_dnsmasq "$chain"; sleep 0.5
        td=$(boot_vm "$chain"); stop_servers
        ratio=-
        case "$tp$td" in *FAIL*) ;; *) ratio=$(echo "scale=2; $tp / $td" | bc) ;; esac
        printf '%-11s %5s %10s %10s %8s\n' "$chain" "$r" "$tp" "$td" "$ratio"
    done
done
