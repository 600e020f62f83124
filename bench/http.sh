#!/bin/bash
# HTTP static-file cost, pxed against nginx, side by side in one run (issue 11's baseline).
#
# Two namespaces joined by a veth pair (created inside them); the server is pinned to CPU 0
# and the clients to CPU 1. A 64 MiB file is fetched with curl by 1 client and by N
# concurrent clients, each download checked byte for byte (sha256). Prints MB/s, the
# server's CPU seconds per GB served, and pxed/nginx ratios.
#
# Usage: sudo bench/http.sh [CONCURRENT=50] [ROUNDS=3]
# Needs: root; installs curl if missing; unpacks Debian's nginx .deb into the scratch dir
# (apt-get download, never installed as a service); builds pxed --release.
set -euo pipefail
conc=${1:-50}
rounds=${2:-3}
repo=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh"
bench_setup pxedh 10.202 curl

mkdir -p "$work/boot" "$work/out" "$work/nginx"
size=$((64 << 20))
head -c "$size" /dev/urandom > "$work/boot/big.bin"
want=$(sha256sum "$work/boot/big.bin" | cut -d' ' -f1)

nginx_setup 10.202.0.1:8080 "$work/boot"

cat > "$work/pxed.toml" <<TOML
[server]
interface = "veth-s"
address = "10.202.0.1"
boot_dir = "$work/boot"
state_dir = "$work/state"
[dhcp]
subnet = "10.202.0.0/16"
range = ["10.202.1.0", "10.202.1.255"]
[http]
listen = "10.202.0.1:8080"
max_connections_per_client = 256
TOML

start_server() {
    case $1 in
    pxed) ip netns exec "$srv" taskset -c 0 "$pxed" serve --config "$work/pxed.toml" 2> "$work/pxed.log" &
          server_pid=$!
          wait_ready "$work/pxed.log" http ;;
    nginx) ip netns exec "$srv" taskset -c 0 "$nginx_bin" -c "$nginx_conf" -p "$work/nginx" &
          server_pid=$!; sleep 0.5 ;;
    esac
    ip netns exec "$cli" curl -sf -o /dev/null "http://10.202.0.1:8080/big.bin" ||
        { echo "bench/http.sh: $1 does not serve big.bin" >&2; exit 1; }
}

# run N -> prints "MB/s cpu_s_per_GB ok/N"
run() {
    local n=$1 i t0 t1 c0 c1 ok=0
    rm -f "$work"/out/*
    c0=$(cpu_ticks "$server_pid"); t0=$(date +%s.%N)
    for i in $(seq "$n"); do
        ip netns exec "$cli" taskset -c 1 timeout 300 curl -s -o "$work/out/$i" \
            "http://10.202.0.1:8080/big.bin" &
    done
    wait $(jobs -p | grep -v "^$server_pid$") 2>/dev/null || true
    t1=$(date +%s.%N); c1=$(cpu_ticks "$server_pid")
    for i in $(seq "$n"); do
        [ "$(sha256sum "$work/out/$i" 2>/dev/null | cut -d' ' -f1)" = "$want" ] && ok=$((ok+1))
    done
    awk -v s="$size" -v n="$ok" -v t0="$t0" -v t1="$t1" -v c="$((c1-c0))" -v hz="$(getconf CLK_TCK)" -v all="$n" \
        'BEGIN { mb = s*n/1e6/(t1-t0); gb = s*n/1e9; printf "%.1f %.2f %d/%d\n", mb, (gb>0 ? c/hz/gb : 0), n, all }'
}

declare -A R
for r in $(seq "$rounds"); do
    for server in nginx pxed; do
        start_server $server
        for n in 1 "$conc"; do
            R[$server,$n,$r]=$(run "$n")
            echo "  round $r $server x$n: ${R[$server,$n,$r]}" >&2
        done
        stop_server
    done
done

printf '\n64 MiB over HTTP (curl), server on CPU 0, clients on CPU 1 (%s), median of %s rounds\n' "$(date -u +%F)" "$rounds"
printf '%-10s %12s %14s %12s %14s %10s %10s\n' clients "nginx MB/s" "nginx CPU s/GB" "pxed MB/s" "pxed CPU s/GB" "MB/s ratio" "CPU ratio"
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for n in 1 "$conc"; do
    nm=$(for r in $(seq "$rounds"); do echo "${R[nginx,$n,$r]}" | cut -d' ' -f1; done | median)
    nc=$(for r in $(seq "$rounds"); do echo "${R[nginx,$n,$r]}" | cut -d' ' -f2; done | median)
    pm=$(for r in $(seq "$rounds"); do echo "${R[pxed,$n,$r]}" | cut -d' ' -f1; done | median)
    pc=$(for r in $(seq "$rounds"); do echo "${R[pxed,$n,$r]}" | cut -d' ' -f2; done | median)
    bad=$(for r in $(seq "$rounds"); do for s in nginx pxed; do echo "${R[$s,$n,$r]}" | cut -d' ' -f3; done; done | grep -v "^$n/$n$" || true)
    [ -z "$bad" ] || echo "WARNING x$n: incomplete or corrupt downloads: $bad" >&2
    printf '%-10s %12s %14s %12s %14s %9sx %9sx\n' "x$n" "$nm" "$nc" "$pm" "$pc" \
        "$(awk -v a="$pm" -v b="$nm" 'BEGIN { printf "%.2f", (b>0 ? a/b : 0) }')" \
        "$(awk -v a="$pc" -v b="$nc" 'BEGIN { printf "%.2f", (b>0 ? a/b : 0) }')"
done
