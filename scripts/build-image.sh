#!/bin/sh
# Builds the container image from ./Dockerfile with podman on a machine that reaches no
# container registry (CI: Debian 12, root; only Debian's mirror and crates.io are reachable).
#
#   scripts/build-image.sh          -> localhost/pxed:test (PXED_IMAGE_TAG to change)
#
# The Dockerfile stays the one a connected user builds with `docker build .`. Its two FROM
# images are made here, locally, under exactly the names it uses, and the build runs with
# --pull=never:
#
#   docker.io/library/debian:bookworm-slim   debootstrap --variant=minbase, updated from
#       bookworm-security/-updates and trimmed like the official slim image (no docs, man
#       pages, locales, apt lists), then `podman import`ed as one layer. The root filesystem
#       tarball is cached in $HOME/.cache/pxed/, keyed by this script's hash and the month
#       (so security updates come in at least monthly); debootstrap's .debs are cached too.
#   docker.io/library/rust:1-bookworm        what rust:1-slim-bookworm is: that debian image
#       plus gcc, libc6-dev, ca-certificates and a rustup toolchain in RUSTUP_HOME=/usr/local/rustup,
#       CARGO_HOME=/usr/local/cargo. Debian's rustc is older than Cargo.toml's rust-version, so
#       the toolchain is the host's (`rustc --print sysroot` in the repo, which must be new
#       enough), copied without its 800 MB of docs, with the host's rustup binary as proxies.
#       Copying it (COPY from a context of hard links) costs about 15 s once; the image is then
#       self-contained like the real one. Bind-mounting the host toolchain into every build
#       instead would save those seconds but leave an image named rust:1-bookworm that has no
#       rust in it, and would tie the Dockerfile build to host paths.
#
# The image is then built in two passes over one snapshot of the repo (podman applies the
# .dockerignore to it). First the build stage alone, with three bind mounts, like BuildKit's
# cache mounts: the host's crate registry ($CARGO_HOME/registry -> /usr/local/cargo/registry),
# a target directory kept in $HOME/.cache/pxed/cargo-target (-> /src/target), so a warm
# rebuild compiles only pxed itself, and the host's CA bundle, which cargo needs where
# crates.io is reached through a TLS-inspecting proxy. Then the whole Dockerfile without
# mounts, its build stage coming from the layer cache: buildah applies build volumes to
# every RUN of every stage and leaves their mount points in the committed layers as empty
# directories, and the runtime stage must not get them. The Dockerfile is unchanged and the
# image the same as without the caches (PXED_IMAGE_CLEAN=1 builds without them).
# --format docker keeps the HEALTHCHECK, as `docker build` does; the OCI format has no field
# for it and podman would drop it.
#
# podman runs with runc (crun refuses hybrid cgroups), explicit low ulimits (the defaults
# fail), and --network host for builds: podman never creates its default network (no
# bridge, no veth, no firewall rules). Idempotent: base images that are present and current
# are reused; PXED_IMAGE_REBUILD=1 rebuilds them.
set -eu

repo=$(cd "$(dirname "$0")/.." && pwd)
self="$repo/scripts/build-image.sh"
tag=${PXED_IMAGE_TAG:-localhost/pxed:test}
cache=${XDG_CACHE_HOME:-$HOME/.cache}/pxed
cargo_home=${CARGO_HOME:-$HOME/.cargo}
debian_ref=docker.io/library/debian:bookworm-slim
rust_ref=docker.io/library/rust:1-bookworm
mirror=http://deb.debian.org/debian
limits="--ulimit nofile=4096:4096 --ulimit nproc=4096:4096"

die() {
    echo "build-image: FAILED: $*" >&2
    exit 1
}
note() { echo "build-image: $*" >&2; }
now() { date +%s.%N; }
took() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }
pm() { podman --runtime runc "$@"; }

[ "$(id -u)" = 0 ] || die "run as root (rootful podman and debootstrap)"

# --- the toolchain for the builder image ----------------------------------------------------
sysroot=${PXED_IMAGE_RUST_SYSROOT:-}
if [ -z "$sysroot" ]; then
    # shellcheck disable=SC2030,SC2031  # PATH is meant to change in the subshell only
    rustc=$(PATH="$PATH:$cargo_home/bin"; command -v rustc) || die "no rustc on PATH or in $cargo_home/bin"
    sysroot=$(cd "$repo" && "$rustc" --print sysroot) || die "rustc --print sysroot"
fi
[ -x "$sysroot/bin/rustc" ] || die "no rustc in toolchain $sysroot"
rust_ver=$("$sysroot/bin/rustc" --version | awk '{ print $2 }')
rust_host=$("$sysroot/bin/rustc" -vV | sed -n 's/^host: //p')
need=$(sed -n 's/^rust-version *= *"\(.*\)"/\1/p' "$repo/Cargo.toml")
[ -z "$need" ] || [ "$(printf '%s\n%s\n' "$need" "${rust_ver%%-*}" | sort -V | head -n1)" = "$need" ] ||
    die "host toolchain $sysroot is rustc $rust_ver; Cargo.toml needs $need"

# --- packages -------------------------------------------------------------------------
# The same list is in scripts/install-deps.sh. podman's recommends (fuse-overlayfs,
# slirp4netns, catatonit) are for rootless podman only; root uses the kernel's overlay.
missing=
for p in podman buildah runc debootstrap; do
    dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
    note "installing$missing"
    apt-get update -q >&2 || die "apt-get update"
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing >&2 ||
        die "apt-get install$missing"
fi

mkdir -p "$cache/state" "$cache/debootstrap-debs" "$cache/cargo-target" "$cargo_home/registry"
work=$(mktemp -d "$cache/tmp.XXXXXX")
# debootstrap mounts /proc and /sys in its target while it runs: never delete through them.
cleanup() {
    awk -v w="$work/" 'index($2, w) == 1 { print $2 }' /proc/mounts | sort -r |
        while read -r m; do umount -l "$m" 2> /dev/null || true; done
    rm -rf --one-file-system "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
script_hash=$(sha256sum "$self" | cut -c1-16)
t_all=$(now)
t_debian="reused"
t_rootfs="cached"
t_rust="reused"

image_id() { pm image inspect --format '{{.Id}}' "$1" 2>/dev/null || true; }

# Whether image $1 exists and is the one recorded with key $2 in state file $3.
current() {
    cur=$(image_id "$1")
    [ -n "$cur" ] && [ "${PXED_IMAGE_REBUILD:-0}" != 1 ] && [ -f "$3" ] && [ "$(cat "$3")" = "$2 $cur" ]
}

# --- docker.io/library/debian:bookworm-slim ----------------------------------------------
debian_key="$script_hash-$(date -u +%Y-%m)"
rootfs_tar="$cache/debian-bookworm-slim-$debian_key.tar"
if ! current "$debian_ref" "$debian_key" "$cache/state/debian"; then
    t=$(now)
    if [ ! -s "$rootfs_tar" ] || [ "${PXED_IMAGE_REBUILD:-0}" = 1 ]; then
        note "debootstrap bookworm (minbase) from $mirror"
        root="${work:?}/rootfs"
        debootstrap --variant=minbase --cache-dir="$cache/debootstrap-debs" bookworm "$root" "$mirror" \
            > "$work/debootstrap.log" 2>&1 ||
            { tail -n 30 "$work/debootstrap.log" >&2; die "debootstrap (log above)"; }
        # The official image's sources, with security updates applied as it has them.
        rm -f "$root/etc/apt/sources.list"
        cat > "$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${mirror}-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
        # No service starts in the chroot (as in the official image).
        printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
        chmod 0755 "$root/usr/sbin/policy-rc.d"
        chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
            sh -c 'apt-get update -q && apt-get dist-upgrade -y -q -o Dpkg::Options::=--force-confold' \
            > "$work/upgrade.log" 2>&1 || { tail -n 30 "$work/upgrade.log" >&2; die "apt-get dist-upgrade in the new root"; }
        # Slim like debuerreotype's "slim" variant: dpkg keeps docs, man pages and locales
        # out (for later installs too), and the ones already installed go.
        cat > "$root/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
# This is the "slim" variant of the Debian base image.
# Many files which are normally unnecessary in containers are excluded,
# and this configuration file keeps them that way.

path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/overrides/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/man/*
EOF
        echo force-unsafe-io > "$root/etc/dpkg/dpkg.cfg.d/docker-apt-speedup"
        cat > "$root/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
        echo 'Acquire::Languages "none";' > "$root/etc/apt/apt.conf.d/docker-no-languages"
        echo 'Acquire::GzipIndexes "true";' > "$root/etc/apt/apt.conf.d/docker-gzip-indexes"
        echo 'Apt::AutoRemove::SuggestsImportant "false";' > "$root/etc/apt/apt.conf.d/docker-autoremove-suggests"
        find "$root/usr/share/doc" -mindepth 1 ! -type d ! -path "$root/usr/share/doc/*/copyright" -delete
        find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
        for d in groff info linda lintian/overrides locale man; do
            [ ! -d "$root/usr/share/$d" ] || find "$root/usr/share/$d" -mindepth 1 -delete
        done
        # Nothing of the build host or the bootstrap stays: podman provides /dev, hostname,
        # hosts and resolv.conf at run time.
        rm -rf "${root:?}"/var/lib/apt/lists/* "${root:?}"/var/cache/apt/*.bin "${root:?}"/var/cache/apt/archives/*.deb \
            "${root:?}"/var/cache/ldconfig/aux-cache "${root:?}"/var/log/apt/* "${root:?}"/var/log/*.log "${root:?}"/dev/* \
            "${root:?}"/tmp/* "${root:?}"/var/tmp/* "${root:?}"/debootstrap "${root:?}"/var/cache/debconf/*-old \
            "${root:?}"/var/lib/dpkg/*-old
        rm -f "$root/etc/resolv.conf" "$root/etc/hostname"
        printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' > "$root/etc/hosts"
        tar --numeric-owner --xattrs --xattrs-include='*' -C "$root" -cf "$rootfs_tar.part" . ||
            die "tar of the debian root"
        mv "$rootfs_tar.part" "$rootfs_tar"
        rm -rf "$root"
        # Older keys' tarballs are dead weight.
        for old in "$cache"/debian-bookworm-slim-*.tar; do
            [ "$old" = "$rootfs_tar" ] || rm -f "$old"
        done
        t_rootfs=$(took "$t")
        note "debian root filesystem: $(du -h "$rootfs_tar" | cut -f1) in $t_rootfs"
    else
        note "debian root filesystem from cache: $rootfs_tar"
    fi
    old=$(image_id "$debian_ref")
    pm import -q --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["bash"]' --message "debootstrap bookworm minbase, slim ($debian_key)" \
        "$rootfs_tar" "$debian_ref" > /dev/null || die "podman import $debian_ref"
    [ -z "$old" ] || [ "$old" = "$(image_id "$debian_ref")" ] || pm rmi "$old" > /dev/null 2>&1 || true
    echo "$debian_key $(image_id "$debian_ref")" > "$cache/state/debian"
    t_debian=$(took "$t")
    note "$debian_ref ready in $t_debian"
fi

# --- docker.io/library/rust:1-bookworm ----------------------------------------------------
rust_key="$script_hash-$rust_ver-$rust_host-$(image_id "$debian_ref")"
if ! current "$rust_ref" "$rust_key" "$cache/state/rust"; then
    t=$(now)
    note "builder image from $debian_ref + gcc + rustc $rust_ver ($sysroot)"
    ctx="$work/builder"
    tc="$ctx/rustup/toolchains/$rust_ver-$rust_host"
    mkdir -p "$tc" "$ctx/cargo/bin"
    # Hard links when the cache shares the toolchain's file system (no bytes copied; nothing
    # here is modified in place), else a copy. share/ (docs, man pages) stays behind.
    for d in "$sysroot"/*; do
        [ "${d##*/}" = share ] && continue
        cp -al "$d" "$tc/" 2>/dev/null || cp -a "$d" "$tc/"
    done
    comps="$tc/lib/rustlib/components"
    if [ -f "$comps" ]; then
        grep -v '^rust-docs' "$comps" > "$comps.new" || true
        rm -f "$comps" && mv "$comps.new" "$comps"
    fi
    # shellcheck disable=SC2030,SC2031
    rustup=$(PATH="$PATH:$cargo_home/bin"; command -v rustup || true)
    if [ -n "$rustup" ]; then
        # As rustup-init leaves CARGO_HOME/bin: rustup and its proxies, one binary.
        cp "$(readlink -f "$rustup")" "$ctx/cargo/bin/rustup"
        for b in "$tc"/bin/*; do
            ln "$ctx/cargo/bin/rustup" "$ctx/cargo/bin/${b##*/}"
        done
        settings_ver=$(sed -n 's/^version = //p' "${RUSTUP_HOME:-$HOME/.rustup}/settings.toml" 2>/dev/null || true)
        printf 'version = %s\ndefault_toolchain = "%s"\nprofile = "minimal"\n\n[overrides]\n' \
            "${settings_ver:-\"12\"}" "$rust_ver-$rust_host" > "$ctx/rustup/settings.toml"
    else
        for b in "$tc"/bin/*; do
            ln -s "/usr/local/rustup/toolchains/$rust_ver-$rust_host/bin/${b##*/}" "$ctx/cargo/bin/${b##*/}"
        done
    fi
    cat > "$ctx/Containerfile" <<EOF
FROM $debian_ref
ENV RUSTUP_HOME=/usr/local/rustup \\
    CARGO_HOME=/usr/local/cargo \\
    PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\
    RUST_VERSION=$rust_ver
RUN apt-get update && \\
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates gcc libc6-dev && \\
    rm -rf /var/lib/apt/lists/*
COPY rustup/ /usr/local/rustup/
COPY cargo/ /usr/local/cargo/
RUN rustup --version && cargo --version && rustc --version
EOF
    old=$(image_id "$rust_ref")
    # shellcheck disable=SC2086
    pm build --pull=never --network host $limits --layers=false -f "$ctx/Containerfile" \
        -t "$rust_ref" "$ctx" > "$work/builder.log" 2>&1 ||
        { tail -n 30 "$work/builder.log" >&2; die "podman build of $rust_ref (log above)"; }
    [ -z "$old" ] || [ "$old" = "$(image_id "$rust_ref")" ] || pm rmi "$old" > /dev/null 2>&1 || true
    echo "$rust_key $(image_id "$rust_ref")" > "$cache/state/rust"
    t_rust=$(took "$t")
    note "$rust_ref ready in $t_rust"
fi

# --- the image (see the top for why two passes) -----------------------------------------------
t=$(now)
context="$work/context"
mkdir "$context"
# shellcheck disable=SC2046
tar -C "$repo" $(sed -n 's,^\([^#!][^*?[:space:]]*[^/]\)/*$,--exclude=./\1,p' "$repo/.dockerignore") -cf - . |
    tar -C "$context" -xf - || die "copy of the build context"
build="pm build --pull=never --network host $limits --format docker"
mounts=
ca=${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}
[ ! -s "$ca" ] || mounts="--volume $(readlink -f "$ca"):/etc/ssl/certs/ca-certificates.crt:ro"
[ "${PXED_IMAGE_CLEAN:-0}" = 1 ] ||
    mounts="$mounts --volume $cargo_home/registry:/usr/local/cargo/registry --volume $cache/cargo-target:/src/target"
stage_tag="$tag-build"
old=$(image_id "$stage_tag")
note "podman build --target build -t $stage_tag" "$mounts"
# shellcheck disable=SC2086  # $mounts (and $limits in $build) are lists of options
$build --target build -t "$stage_tag" $mounts "$context" || die "podman build of the build stage (output above)"
new=$(image_id "$stage_tag")
[ -z "$old" ] || [ "$old" = "$new" ] || pm rmi "$old" > /dev/null 2>&1 || true
t_stage=$(took "$t")

t=$(now)
old=$(image_id "$tag")
note "podman build -t $tag (the Dockerfile of $repo)"
$build -t "$tag" "$context" 2>&1 | tee "$work/final.log" || true
new=$(image_id "$tag")
grep -q "^Successfully tagged $tag" "$work/final.log" && [ -n "$new" ] ||
    die "podman build of $tag (output above)"
# Steps of earlier stages ([k/n] with k < n) that ran again instead of coming from the cache.
rebuilt=$(awk '/^\[[0-9]+\/[0-9]+\] STEP / && !/: FROM / {
        split(substr($1, 2), kn, "/"); if (kn[1] + 0 < kn[2] + 0) { step = $0; next } }
    step != "" { if ($0 !~ /^--> Using cache/) print step; step = "" }' "$work/final.log")
[ -z "$rebuilt" ] || note "WARNING: not from the layer cache (built again, without the caches): $rebuilt"
# The finished image checks itself (scripts/image.sh check: binary, boot files, config,
# group-0 ownership and permissions); no network, as its default user. The image has no
# getcap, so the binary's file capabilities are read here, from the mounted image.
mnt=$(pm image mount "$tag") || die "podman image mount $tag"
caps=$(getcap "$mnt/usr/local/bin/pxed" 2>&1) || true
pm image umount "$tag" > /dev/null 2>&1 || true
[ -z "$caps" ] || die "the image's pxed has file capabilities, which a pod that drops ALL cannot exec: $caps"
# shellcheck disable=SC2086
pm run --rm --network none --no-healthcheck $limits --entrypoint /usr/local/lib/pxed/image.sh "$tag" check / ||
    die "scripts/image.sh check in $tag (output above)"
# The previous build of this tag, now untagged, goes (unless a container still uses it).
[ -z "$old" ] || [ "$old" = "$new" ] || pm rmi "$old" > /dev/null 2>&1 || true
t_final=$(took "$t")

size() { pm image inspect --format '{{.Size}}' "$1" | awk '{ printf "%d bytes (%.1f MB)", $1, $1 / 1e6 }'; }
echo "build-image: $tag $(echo "$new" | cut -c1-12): $(size "$tag")"
echo "build-image: try it: podman --runtime runc run --rm --network none --no-healthcheck $limits --entrypoint /usr/local/bin/pxed $tag --version"
echo "build-image: $debian_ref: $(size "$debian_ref")"
echo "build-image: $rust_ref: $(size "$rust_ref")"
echo "build-image: times: debian base $t_debian (root filesystem $t_rootfs), builder $t_rust, build stage $t_stage, image $t_final, total $(took "$t_all")"
