#!/bin/bash
# DHCP DORA rate, pxed (durable SQLite leases) against dnsmasq (lease file, and --leasefile-ro),
# side by side in one run, with Kea's perfdhcp (Debian package kea-admin).
#
# Two namespaces joined by a veth pair; the server on CPU 0, perfdhcp on CPU 1. perfdhcp acts
# as a relay (giaddr = its address, port 67). Every step starts a fresh server with an empty
# lease store, runs `perfdhcp -r RATE -R CLIENTS -p SECS -W 1000000`, and counts ACKs against
# DISCOVERs sent. Prints, per server, each rate's drops and latencies, and the highest rate
# with under 1% drops, then the ratios.
#
# Latency: tcpdump (on CPU 1) records each step on the server's interface, and
# bench/dhcp_latency.py reports the server-side p50/p99 from request in to reply out.
#
# pxed runs at its default log level (info: a line per reply), writing to a file, unless
# PXED_LOG says otherwise.
#
# Usage: sudo bench/dhcp.sh [CLIENTS=60000] [SECS=10] [RATES="250 350 500 1000 2000 4000 8000 10000 12000 16000"] [SERVERS="dnsmasq dnsmasq-ro pxed"]
set -euo pipefail
clients=${1:-60000}
secs=${2:-10}
rates=${3:-"250 350 500 1000 2000 4000 8000 10000 12000 16000"}
servers=${4:-"dnsmasq dnsmasq-ro pxed"}
repo=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh"
bench_setup pxedd 10.202 kea-admin dnsmasq-base tcpdump
mkdir -p "$work/boot" "$work/etc"  # the config has a directory of its own: pxed watches it

start_server() { # name
    rm -rf "$work/state"; mkdir -p "$work/state"
    case $1 in
    pxed)
        cat > "$work/etc/pxed.toml" <<TOML
[server]
interface = "veth-s"
address = "10.202.0.1"
boot_dir = "$work/boot"
state_dir = "$work/state"
[dhcp]
subnet = "10.202.0.0/16"
range = ["10.202.1.0", "10.202.255.254"]
lease_time = "1h"
# perfdhcp's clients are all unknown MACs; dnsmasq has no such limit, so neither does this run.
unknown_client_rate = 1000000
unknown_client_burst = 1000000
[http]
listen = "10.202.0.1:8080"
[profiles.disk]
action = "local"
[defaults]
profile = "disk"
TOML
        ${PXED_LOG:+env PXED_LOG=$PXED_LOG} ip netns exec "$srv" taskset -c 0 "$pxed" serve --config "$work/etc/pxed.toml" 2> "$work/server.log" &
        server_pid=$! ;;
    dnsmasq|dnsmasq-ro)
        extra=(--dhcp-leasefile="$work/state/dnsmasq.leases")
        [ "$1" = dnsmasq-ro ] && extra+=(--leasefile-ro)
        ip netns exec "$srv" taskset -c 0 dnsmasq --keep-in-foreground --port=0 --no-ping \
            --dhcp-range=10.202.1.0,10.202.255.254,255.255.0.0,1h --dhcp-lease-max=70000 \
            --interface=veth-s --bind-interfaces --user=root --log-facility=/dev/null \
            --pid-file="$work/state/dnsmasq.pid" "${extra[@]}" 2> "$work/server.log" &
        server_pid=$! ;;
    esac
    sleep 1
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
}

# step RATE -> "acks discovers drop% avg_do_ms avg_ra_ms max_ra_ms"
step() {
    local out cap
    rm -f "$work/step.pcap"
    ip netns exec "$srv" taskset -c 1 tcpdump -i veth-s -n -s 400 -B 65536 -w "$work/step.pcap" udp port 67 2>/dev/null &
    cap=$!
    sleep 0.5
    out=$(ip netns exec "$cli" taskset -c 1 timeout $((secs + 30)) perfdhcp -4 -r "$1" -R "$clients" \
          -p "$secs" -W 1000000 10.202.0.1 2>&1 || true)
    kill -INT "$cap" 2>/dev/null; wait "$cap" 2>/dev/null || true
    echo "$out" > "$work/perfdhcp-$1.txt"
    echo "$out" | awk '
        /Statistics for: DISCOVER-OFFER/ { ex = 1 }
        /Statistics for: REQUEST-ACK/    { ex = 2 }
        /^sent packets:/     { sent[ex] = $3 }
        /^received packets:/ { recv[ex] = $3 }
        /^avg delay:/        { avg[ex] = $3 }
        /^max delay:/        { max[ex] = $3 }
        END {
            d = sent[1] + 0; a = recv[2] + 0
            drop = (d > 0) ? 100 * (d - a) / d : 100
            printf "%d %d %.2f %s %s %s\n", a, d, drop, avg[1], avg[2], max[2]
        }'
}

declare -A best
printf '%-11s %6s %9s %9s %7s %10s %10s %10s %s\n' server rate ACKs/s DISCOVERs drop% avgDO_ms avgRA_ms maxRA_ms "p50DO p99DO p50RA p99RA (ms, server side)"
for server in $servers; do
    best[$server]=0
    for rate in $rates; do
        start_server "$server"
        read -r acks discovers drop ado ara mra <<< "$(step "$rate")"
        stop_server
        lat=$(python3 "$repo/bench/dhcp_latency.py" "$work/step.pcap" 2>/dev/null || echo "- - - -")
        printf '%-11s %6s %9.0f %9s %7s %10s %10s %10s %s\n' "$server" "$rate" \
            "$(awk -v a="$acks" -v s="$secs" 'BEGIN { print a / s }')" "$discovers" "$drop" "$ado" "$ara" "$mra" "$lat"
        if awk -v d="$drop" 'BEGIN { exit !(d < 1) }'; then best[$server]=$rate; fi
    done
done
echo
echo "highest rate with <1% drops (${clients} clients, ${secs} s steps):"
for server in $servers; do printf '  %-11s %6s DORA/s\n' "$server" "${best[$server]}"; done
[ -n "${best[dnsmasq]:-}" ] && [ -n "${best[dnsmasq-ro]:-}" ] && [ -n "${best[pxed]:-}" ] || exit 0
printf '  pxed / dnsmasq (lease file): %s\n' "$(awk -v a="${best[pxed]}" -v b="${best[dnsmasq]}" 'BEGIN { if (b > 0) printf "%.1fx", a / b; else print "n/a" }')"
printf '  pxed / dnsmasq --leasefile-ro: %s\n' "$(awk -v a="${best[pxed]}" -v b="${best[dnsmasq-ro]}" 'BEGIN { if (b > 0) printf "%.1fx", a / b; else print "n/a" }')"
