#!/bin/sh
# The container image's build steps. The Dockerfile runs exactly these commands;
# scripts/build-image.sh builds the image with podman (on CI too) and runs `check` in it.
#
#   scripts/image.sh build-deps     apt packages the build stage needs (ipxe)
#   scripts/image.sh build OUT      release binary, iPXE first stages, signed shim and GRUBs,
#                                   example config -> OUT/
#   scripts/image.sh runtime ROOT   the unprivileged user, state dir and config inside ROOT/
#   scripts/image.sh check ROOT     checks a finished tree: binary, ownership, config, boot files
#
# The image runs as user 10001 with primary group 0, and works under any other UID with
# GID 0 (OpenShift's restricted SCC assigns one): what pxed writes belongs to group 0 with
# group permissions equal to the user's. The binary has no file capabilities: a container's
# non-root user would not get them without allowPrivilegeEscalation, and root gets its
# capabilities from the container runtime.
set -eu
step=${1:?usage: scripts/image.sh build-deps|build OUT|runtime ROOT|check ROOT}
repo=$(cd "$(dirname "$0")/.." && pwd)
uid=10001

case $step in
build-deps)
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends ipxe
    ;;
build)
    out=${2:?OUT}
    # Without the debug info that Cargo.toml's release profile keeps for profiling: it is
    # most of the binary's size, and nobody profiles the shipped image.
    (cd "$repo" && CARGO_PROFILE_RELEASE_DEBUG=0 cargo build --release --locked)
    install -D -m 0755 "$repo/target/release/pxed" "$out/usr/local/bin/pxed"
    sh "$repo/boot-images/fetch-ipxe.sh" "$out/srv/pxed/boot"
    sh "$repo/boot-images/fetch-signed.sh" "$out/srv/pxed/boot"
    install -D -m 0644 "$repo/config/kubevirt.toml" "$out/etc/pxed/pxed.toml"
    install -d -m 0755 "$out/var/lib/pxed"
    ;;
runtime)
    root=${2:?ROOT}
    mkdir -p "$root/etc"
    grep -q "^pxed:" "$root/etc/passwd" 2>/dev/null ||
        echo "pxed:x:$uid:0:pxed:/var/lib/pxed:/usr/sbin/nologin" >> "$root/etc/passwd"
    # State and the config (the admin API writes edits back) belong to pxed and to group 0,
    # which has the user's permissions.
    chown -R "$uid:0" "$root/var/lib/pxed" "$root/etc/pxed"
    chmod -R g=u "$root/var/lib/pxed" "$root/etc/pxed"
    chmod 0770 "$root/var/lib/pxed"
    chmod 0775 "$root/etc/pxed"
    chmod 0664 "$root/etc/pxed/pxed.toml"
    ;;
check)
    root=${2:?ROOT}
    "$root/usr/local/bin/pxed" --version
    if command -v getcap > /dev/null; then
        caps=$(getcap "$root/usr/local/bin/pxed")
        [ -z "$caps" ] || { echo "image: pxed has file capabilities: $caps" >&2; exit 1; }
    fi
    for f in undionly.kpxe ipxe.efi snponly.efi shimx64.efi grubx64.efi grubaa64.efi; do
        [ -s "$root/srv/pxed/boot/$f" ] || { echo "image: missing /srv/pxed/boot/$f" >&2; exit 1; }
    done
    "$root/usr/local/bin/pxed" check --config "$root/etc/pxed/pxed.toml" > /dev/null
    grep -q "^pxed:x:$uid:0:" "$root/etc/passwd" || { echo "image: no user pxed ($uid, group 0)" >&2; exit 1; }
    bad=$(find "$root/var/lib/pxed" "$root/etc/pxed" -printf '%U:%G %m %p\n' |
        awk -v want="$uid:0" '{ m = sprintf("%03d", $2); u = substr(m, length(m) - 2, 1); g = substr(m, length(m) - 1, 1) }
            $1 != want || u != g { print }')
    [ -z "$bad" ] || { printf 'image: not %s:0 with group permissions = user permissions:\n%s\n' "$uid" "$bad" >&2; exit 1; }
    for want in "var/lib/pxed $uid:0 770" "etc/pxed $uid:0 775" "etc/pxed/pxed.toml $uid:0 664"; do
        # shellcheck disable=SC2086
        set -- $want
        got="$(stat -c %u:%g "$root/$1") $(stat -c %a "$root/$1")"
        [ "$got" = "$2 $3" ] || { echo "image: /$1 is $got, not $2 $3" >&2; exit 1; }
    done
    echo "image: tree in $root is complete"
    ;;
*)
    echo "scripts/image.sh: unknown step $step" >&2
    exit 2
    ;;
esac
