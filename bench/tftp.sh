#!/bin/bash
# TFTP throughput, pxed against dnsmasq, side by side in one run.
#
# Two namespaces joined by a veth pair (created inside them); the server is pinned to CPU 0
# and the clients to CPU 1. A 64 MiB file is fetched with curl (blksize 1468) and atftp
# (blksize 1468, windowsize 16), by 1 client and by N concurrent clients. Prints, as medians
# of ROUNDS rounds that alternate which server goes first: MB/s, the server's CPU seconds
# per GB, how busy the clients' CPU was, the server's sleeps (context switches) per 1,000
# blocks, and pxed/dnsmasq ratios. One round of 50 lock-step clients varies by +-15% here,
# so a single round is not a comparison.
#
# Usage: sudo bench/tftp.sh [CONCURRENT=50] [ROUNDS=3]
# Needs: root; installs dnsmasq-base, atftp and curl if missing; builds pxed --release.
set -euo pipefail
conc=${1:-50}
rounds=${2:-3}
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

# Context switches of every thread of PID so far.
switches() { cat /proc/"$1"/task/*/status | awk '/ctxt_switches/ {s += $2} END {print s}'; }
# Busy and idle ticks of CPU 1, where the clients run.
cpu1() { awk '/^cpu1 / {print $2+$3+$4+$7+$8, $5+$6}' /proc/stat; }

# run CLIENT N -> prints "MB/s cpu_s_per_GB ok client_cpu_busy_% switches_per_1k_blocks"
run() {
    local client=$1 n=$2 i t0 t1 c0 c1 w0 w1 b0 i0 b1 i1 ok=0
    rm -f "$work"/out/*
    c0=$(cpu_ticks "$server_pid"); w0=$(switches "$server_pid"); read -r b0 i0 <<< "$(cpu1)"
    t0=$(date +%s.%N)
    for i in $(seq "$n"); do
        case $client in
        curl)  ip netns exec "$cli" taskset -c 1 timeout 300 curl -s --tftp-blksize 1468 \
                   -o "$work/out/$i" "tftp://10.201.0.1/big.bin" & ;;
        atftp) ip netns exec "$cli" taskset -c 1 timeout 300 atftp --option "blksize 1468" \
                   --option "windowsize 16" -g -r big.bin -l "$work/out/$i" 10.201.0.1 >/dev/null 2>&1 & ;;
        esac
    done
    wait $(jobs -p | grep -v "^$server_pid$") 2>/dev/null || true
    t1=$(date +%s.%N); c1=$(cpu_ticks "$server_pid"); w1=$(switches "$server_pid"); read -r b1 i1 <<< "$(cpu1)"
    for i in $(seq "$n"); do [ "$(stat -c %s "$work/out/$i" 2>/dev/null || echo 0)" = "$size" ] && ok=$((ok+1)); done
    awk -v s="$size" -v n="$ok" -v t0="$t0" -v t1="$t1" -v c="$((c1-c0))" -v hz="$(getconf CLK_TCK)" \
        -v busy="$((b1-b0))" -v idle="$((i1-i0))" -v w="$((w1-w0))" \
        'BEGIN { mb = s*n/1e6/(t1-t0); gb = s*n/1e9; blocks = s*n/1468
                 printf "%.1f %.2f %d %.0f %.0f\n", mb, (gb>0 ? c/hz/gb : 0), n,
                        100*busy/(busy+idle), (blocks>0 ? w*1000/blocks : 0) }'
}

# R[server,client,n] collects one line per round; med COLUMN prints that column's median.
declare -A R
for r in $(seq "$rounds"); do
    order="dnsmasq pxed"; [ $((r % 2)) = 0 ] && order="pxed dnsmasq"
    for server in $order; do
        start_server $server
        for client in curl atftp; do
            for n in 1 "$conc"; do
                line=$(run $client "$n")
                R[$server,$client,$n]+="$line"$'\n'
                echo "  round $r: $server $client x$n: $line" >&2
            done
        done
        stop_server
    done
done
med() { sort -n -k"$1" | awk -v k="$1" '{v[NR] = $k} END {print (NR % 2 ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2)}'; }
minok() { awk '{print $3}' | sort -n | head -n1; }

printf '\n64 MiB over TFTP, server on CPU 0, clients on CPU 1, medians of %s rounds (%s)\n' "$rounds" "$(date -u +%F)"
printf '%-28s %14s %14s %8s %16s\n' "client" "dnsmasq MB/s" "pxed MB/s" "ratio" "clients' CPU"
for client in curl atftp; do
    for n in 1 "$conc"; do
        label="$client x$n"; [ $client = curl ] && label="$label (blksize 1468)" || label="$label (bs 1468, win 16)"
        dm=$(printf %s "${R[dnsmasq,$client,$n]}" | med 1); pm=$(printf %s "${R[pxed,$client,$n]}" | med 1)
        dok=$(printf %s "${R[dnsmasq,$client,$n]}" | minok); pok=$(printf %s "${R[pxed,$client,$n]}" | minok)
        du=$(printf %s "${R[dnsmasq,$client,$n]}" | med 4); pu=$(printf %s "${R[pxed,$client,$n]}" | med 4)
        printf '%-28s %6s (%2s/%-2s) %6s (%2s/%-2s) %7sx %7s%% / %3s%%\n' "$label" "$dm" "$dok" "$n" "$pm" "$pok" "$n" \
            "$(awk -v a="$pm" -v b="$dm" 'BEGIN { printf "%.2f", (b>0 ? a/b : 0) }')" "$du" "$pu"
    done
done
printf '(ok counts are the worst round; clients'"'"' CPU is how busy CPU 1 was, dnsmasq / pxed)\n'
printf '\nserver CPU seconds per GB served, and sleeps (context switches) per 1,000 blocks\n'
for client in curl atftp; do
    for n in 1 "$conc"; do
        dc=$(printf %s "${R[dnsmasq,$client,$n]}" | med 2); pc=$(printf %s "${R[pxed,$client,$n]}" | med 2)
        dw=$(printf %s "${R[dnsmasq,$client,$n]}" | med 5); pw=$(printf %s "${R[pxed,$client,$n]}" | med 5)
        printf '%-14s dnsmasq %6s s/GB %5s sleeps   pxed %6s s/GB %5s sleeps\n' "$client x$n" "$dc" "$dw" "$pc" "$pw"
    done
done
