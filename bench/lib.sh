# Shared by the bench scripts (sourced, bash). Sets up the two-namespace topology from
# shared/notes/benchmark-facts.md and removes it (and leftovers of crashed runs) afterwards.
#
#   bench_setup PREFIX NET PACKAGES...
#     installs PACKAGES if missing, builds pxed --release ($pxed), creates namespaces
#     $srv and $cli joined by veth-s (NET.0.1/16) and veth-c (NET.0.2/16), a scratch dir
#     $work, and an EXIT trap that kills $server_pid and deletes all of it.
#   stop_server        stops $server_pid (the server a script started) and clears it
#   cpu_ticks PID      user + system CPU of PID so far, in clock ticks

bench_setup() {
    local prefix=$1 net=$2 p old pid
    shift 2
    [ "$(id -u)" = 0 ] || { echo "bench: needs root" >&2; exit 1; }
    for p in "$@"; do
        dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || {
            apt-get update -q >&2; DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$p" >&2; }
    done
    (cd "$repo" && cargo build --release --quiet)
    pxed="$repo/target/release/pxed"
    for old in $(ip netns list | awk -v p="^$prefix-[0-9]+-" '$1 ~ p {print $1}'); do
        pid=${old#"$prefix"-}; pid=${pid%%-*}
        kill -0 "$pid" 2>/dev/null || ip netns delete "$old" 2>/dev/null || true
    done
    srv=$prefix-$$-srv; cli=$prefix-$$-cli
    work=$(mktemp -d)
    server_pid=
    trap bench_cleanup EXIT
    ip netns add "$srv"; ip netns add "$cli"
    ip -n "$srv" link set lo up; ip -n "$cli" link set lo up
    ip -n "$srv" link add veth-s type veth peer name veth-c netns "$cli"
    ip -n "$srv" addr add "$net.0.1/16" dev veth-s; ip -n "$srv" link set veth-s up
    ip -n "$cli" addr add "$net.0.2/16" dev veth-c; ip -n "$cli" link set veth-c up
}

bench_cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
    ip netns delete "$srv" 2>/dev/null || true
    ip netns delete "$cli" 2>/dev/null || true
    rm -rf "$work"
}

stop_server() { kill "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null || true; server_pid=; }

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
