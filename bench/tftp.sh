#!/bin/bash
# TFTP throughput, pxed against dnsmasq, side by side in one run.
#
# Two namespaces joined by a veth pair (created inside them); the server is pinned to CPU 0
# and the clients to CPU 1. A 64 MiB file is fetched with curl (blksize 1468) and atftp
# (blksize 1468, windowsize 16), by 1 client and by N concurrent clients. Prints MB/s, the
# server's CPU seconds per GB, and pxed/dnsmasq ratios.
#
# Usage: sudo bench/tftp.sh [CONCURRENT=50]
# Needs: root; installs dnsmasq-base, atftp and curl if missing; builds pxed --release.
set -euo pipefail
conc=${1:-50}
repo=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh"
bench_setup pxedb 10.201 dnsmasq-base atftp curl

mkdir -p "$work/boot" "$work/out"
head -c $((64 << 20)) /dev/urandom > "$work/boot/big.bin"
size=$((64 << 20))
cat > "$work/pxed.toml" <<TOML
[server]
interface = "veth-s"
address = "10.201.0.1"
boot_dir = "$work/boot"
state_dir = "$work/state"
[dhcp]
subnet = "10.201.0.0/16"
range = ["10.201.1.0", "10.201.1.255"]
[http]
listen = "10.201.0.1:8080"
[tftp]
max_blksize = 1468
max_windowsize = 64
# All the bench's clients share one address, where a storm's machines each have their own:
# the default cap of 8 sessions per address would turn 50 clients into 8 at a time.
max_sessions_per_client = 64
TOML

start_server() {
    case $1 in
    pxed) ip netns exec "$srv" taskset -c 0 "$pxed" serve --config "$work/pxed.toml" 2> "$work/pxed.log" &
          server_pid=$!
          wait_ready "$work/pxed.log" tftp ;;
    dnsmasq) ip netns exec "$srv" taskset -c 0 dnsmasq --keep-in-foreground --port=0 --enable-tftp \
                --tftp-root="$work/boot" --tftp-max=200 --interface=veth-s --bind-interfaces \
                --user=root --log-facility="$work/dnsmasq.log" --pid-file="$work/dnsmasq.pid" &
          server_pid=$!; sleep 0.5 ;;
    esac
}

# run CLIENT N -> prints "MB/s cpu_s_per_GB ok/N"
run() {
    local client=$1 n=$2 i t0 t1 c0 c1 ok=0
    rm -f "$work"/out/*
    c0=$(cpu_ticks "$server_pid"); t0=$(date +%s.%N)
    for i in $(seq "$n"); do
        case $client in
        curl)  ip netns exec "$cli" taskset -c 1 timeout 300 curl -s --tftp-blksize 1468 \
                   -o "$work/out/$i" "tftp://10.201.0.1/big.bin" & ;;
        atftp) ip netns exec "$cli" taskset -c 1 timeout 300 atftp --option "blksize 1468" \
                   --option "windowsize 16" -g -r big.bin -l "$work/out/$i" 10.201.0.1 >/dev/null 2>&1 & ;;
        esac
    done
    wait $(jobs -p | grep -v "^$server_pid$") 2>/dev/null || true
    t1=$(date +%s.%N); c1=$(cpu_ticks "$server_pid")
    for i in $(seq "$n"); do [ "$(stat -c %s "$work/out/$i" 2>/dev/null || echo 0)" = "$size" ] && ok=$((ok+1)); done
    awk -v s="$size" -v n="$ok" -v t0="$t0" -v t1="$t1" -v c="$((c1-c0))" -v hz="$(getconf CLK_TCK)" -v all="$n" \
        'BEGIN { mb = s*n/1e6/(t1-t0); gb = s*n/1e9; printf "%.1f %.2f %d/%d\n", mb, (gb>0 ? c/hz/gb : 0), n, all }'
}

declare -A R
for server in dnsmasq pxed; do
    start_server $server
    for client in curl atftp; do
        for n in 1 "$conc"; do
            R[$server,$client,$n]=$(run $client "$n")
            echo "  $server $client x$n: ${R[$server,$client,$n]}" >&2
        done
    done
    stop_server
done

printf '\n64 MiB over TFTP, server on CPU 0, clients on CPU 1 (%s)\n' "$(date -u +%F)"
printf '%-28s %18s %18s %8s\n' "client" "dnsmasq MB/s" "pxed MB/s" "ratio"
for client in curl atftp; do
    for n in 1 "$conc"; do
        read -r dm dc dok <<< "${R[dnsmasq,$client,$n]}"
        read -r pm pc pok <<< "${R[pxed,$client,$n]}"
        label="$client x$n"; [ $client = curl ] && label="$label (blksize 1468)" || label="$label (bs 1468, win 16)"
        printf '%-28s %10s (%5s) %10s (%5s) %7sx\n' "$label" "$dm" "$dok" "$pm" "$pok" \
            "$(awk -v a="$pm" -v b="$dm" 'BEGIN { printf "%.2f", (b>0 ? a/b : 0) }')"
    done
done
printf '\nserver CPU seconds per GB served\n'
for client in curl atftp; do
    for n in 1 "$conc"; do
        read -r _ dc _ <<< "${R[dnsmasq,$client,$n]}"; read -r _ pc _ <<< "${R[pxed,$client,$n]}"
        printf '%-28s dnsmasq %6s   pxed %6s\n' "$client x$n" "$dc" "$pc"
    done
done
