#!/bin/bash
# Start-up and idle cost: the time from exec to every listener ready, and the resident
# memory of an idle server, for pxed with a small config and with 1,000 [hosts], next to
# dnsmasq's and nginx's idle memory (same 1,000 MACs as dhcp-host lines).
#
# The start time is taken just before `exec` (bash's $EPOCHREALTIME in the process that
# becomes pxed), the ready time from the timestamp of pxed's last "listener ready" log line,
# so polling adds nothing. Idle RSS is VmRSS 2 s after ready. Medians of ROUNDS starts.
#
# Usage: sudo bench/startup.sh [ROUNDS=10]
set -euo pipefail
rounds=${1:-10}
repo=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh"
bench_setup pxedu 10.204 dnsmasq-base python3
ip=10.204.0.1
mkdir -p "$work/boot" "$work/etc" "$work/state"
for f in undionly.kpxe ipxe.efi vmlinuz initrd.img; do head -c 65536 /dev/urandom > "$work/boot/$f"; done
nginx_setup "$ip:8080" "$work/boot"

base() {
    cat <<TOML
[server]
interface = "veth-s"
address = "$ip"
boot_dir = "$work/boot"
state_dir = "$work/state"
[dhcp]
subnet = "10.204.0.0/16"
range = ["10.204.16.0", "10.204.31.255"]
[http]
listen = "$ip:8080"
[profiles.linux]
kernel = "vmlinuz"
initrd = ["initrd.img"]
TOML
}
base > "$work/etc/small.toml"
{
    base
    for i in $(seq 0 999); do
        printf '[hosts."de:00:00:00:%02x:%02x"]\nprofile = "linux"\n' $((i >> 8)) $((i & 255))
    done
} > "$work/etc/hosts1000.toml"
{
    echo "port=0"; echo "interface=veth-s"; echo "bind-interfaces"
    echo "dhcp-range=10.204.16.0,10.204.31.255,255.255.0.0,1h"
    echo "enable-tftp"; echo "tftp-root=$work/boot"
    for i in $(seq 0 999); do printf 'dhcp-host=de:00:00:00:%02x:%02x,set:m%d\n' $((i >> 8)) $((i & 255)) $i; done
} > "$work/etc/dnsmasq.conf"

# one_start CONFIG: appends "startup_ms idle_rss_kib" to $work/results
one_start() {
    rm -rf "$work/state"/* "$work/pxed.log"
    ip netns exec "$srv" bash -c 'echo "$EPOCHREALTIME" > "$1"; exec "$2" serve --config "$3" 2> "$4"' \
        - "$work/t0" "$pxed" "$1" "$work/pxed.log" &
    server_pid=$!
    for _ in $(seq 500); do
        [ "$(grep -c 'listener ready' "$work/pxed.log" 2>/dev/null || true)" -ge 4 ] 2>/dev/null && break
        sleep 0.01
    done
    [ "$(grep -c 'listener ready' "$work/pxed.log")" -ge 4 ] || {
        cat "$work/pxed.log" >&2; echo "bench/startup.sh: pxed did not get ready" >&2; exit 1; }
    sleep 2
    local rss
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$server_pid/status")
    stop_server
    python3 - "$work/t0" "$work/pxed.log" "$rss" >> "$work/results" <<'PY'
import sys, datetime
t0 = float(open(sys.argv[1]).read())
ready = [l for l in open(sys.argv[2]) if "listener ready" in l][-1].split()[0]
t1 = datetime.datetime.fromisoformat(ready.replace("Z", "+00:00")).timestamp()
print(f"{(t1 - t0) * 1000:.1f} {sys.argv[3]}")
PY
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
printf '\nstart-up (exec to all 4 listeners ready) and idle RSS, median of %s starts (%s)\n' "$rounds" "$(date -u +%F)"
printf '%-28s %12s %14s\n' server "start-up ms" "idle RSS MiB"
for cfg in small hosts1000; do
    : > "$work/results"
    for _ in $(seq "$rounds"); do one_start "$work/etc/$cfg.toml"; done
    results=$(cat "$work/results")
    ms=$(echo "$results" | cut -d' ' -f1 | median)
    kib=$(echo "$results" | cut -d' ' -f2 | median)
    printf '%-28s %12s %14.1f\n' "pxed ($cfg)" "$ms" "$(awk -v k="$kib" 'BEGIN { print k / 1024 }')"
done
ip netns exec "$srv" dnsmasq --keep-in-foreground --conf-file="$work/etc/dnsmasq.conf" --user=root \
    --log-facility=/dev/null --pid-file="$work/state/dnsmasq.pid" &
server_pid=$!
ip netns exec "$srv" "$nginx_bin" -c "$nginx_conf" -p "$work/nginx" &
nginx_pid=$!
sleep 2
d=$(awk '/^VmRSS:/ {print $2}' "/proc/$server_pid/status")
g=$(awk '/^VmRSS:/ {print $2}' "/proc/$nginx_pid/status")
kill "$nginx_pid"; wait "$nginx_pid" 2>/dev/null || true
stop_server
printf '%-28s %12s %14.1f\n' "dnsmasq (1000 dhcp-host)" - "$(awk -v k="$d" 'BEGIN { print k / 1024 }')"
printf '%-28s %12s %14.1f\n' "nginx (1 worker)" - "$(awk -v k="$g" 'BEGIN { print k / 1024 }')"
printf '%-28s %12s %14.1f\n' "dnsmasq + nginx" - "$(awk -v k="$((d + g))" 'BEGIN { print k / 1024 }')"
