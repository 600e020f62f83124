# Shared by the bench scripts (sourced, bash). Sets up the two-namespace topology from
# shared/notes/benchmark-facts.md and removes it (and leftovers of crashed runs) afterwards.
#
#   bench_setup PREFIX NET PACKAGES...
#     installs PACKAGES if missing, builds pxed --release ($pxed), creates namespaces
#     $srv and $cli joined by veth-s (NET.0.1/16) and veth-c (NET.0.2/16), a scratch dir
#     $work, and an EXIT trap that kills $server_pid and deletes all of it.
#   stop_server        stops $server_pid (the server a script started) and clears it
#   cpu_ticks PID      user + system CPU of PID so far, in clock ticks
#   peak_rss_kib PID   the most memory PID has held (VmHWM), in KiB
#   wait_ready LOG WHAT
#                      waits up to 10 s for pxed's "WHAT listener ready" line in LOG; exits
#                      with LOG's tail if it never comes
#   nginx_setup LISTEN ROOT
#                      unpacks Debian's nginx .deb (apt-get download, cached; never installed)
#                      into $work/nginx, configured like a tuned static server (sendfile,
#                      one worker, no access log) for ROOT on LISTEN; sets $nginx_bin and
#                      $nginx_conf

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

peak_rss_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }

nginx_setup() {
    local listen=$1 root=$2 cache deb
    cache=${PXED_CACHE:-${HOME:-/root}/.cache/pxed}
    mkdir -p "$cache" "$work/nginx/tmp"
    deb=$(ls "$cache"/nginx_*.deb 2>/dev/null | head -n1 || true)
    if [ -z "$deb" ]; then
        (cd "$cache" && apt-get download nginx >&2)
        deb=$(ls "$cache"/nginx_*.deb | head -n1)
    fi
    dpkg -x "$deb" "$work/nginx/root"
    # nginx's shared-library dependencies are the base system's (libc, pcre2, ssl, zlib).
    nginx_bin=$work/nginx/root/usr/sbin/nginx
    nginx_conf=$work/nginx/nginx.conf
    cat > "$nginx_conf" <<CONF
worker_processes 1;
worker_rlimit_nofile 65536;
daemon off;
master_process off;
error_log $work/nginx/error.log;
pid $work/nginx/nginx.pid;
events { worker_connections 16384; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    client_body_temp_path $work/nginx/tmp;
    proxy_temp_path $work/nginx/tmp;
    fastcgi_temp_path $work/nginx/tmp;
    uwsgi_temp_path $work/nginx/tmp;
    scgi_temp_path $work/nginx/tmp;
    server {
        listen $listen;
        root $root;
    }
}
CONF
}

wait_ready() {
    local log=$1 what=$2
    for _ in $(seq 100); do grep -q "$what listener ready" "$log" 2>/dev/null && return 0; sleep 0.1; done
    tail "$log" >&2
    echo "bench: pxed's $what listener never got ready" >&2
    exit 1
}
