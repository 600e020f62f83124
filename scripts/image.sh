#!/bin/sh
# The container image's build steps. The Dockerfile runs exactly these commands, and
# tests/deploy.rs runs them too (there is no container engine on CI machines), so the image
# recipe cannot rot unseen.
#
#   scripts/image.sh build-deps     apt packages the build stage needs (ipxe, setcap)
#   scripts/image.sh build OUT      release binary, iPXE first stages, example config -> OUT/
#   scripts/image.sh runtime ROOT   the unprivileged user and state dir inside ROOT/
#   scripts/image.sh check ROOT     checks a finished tree: binary, capabilities, config, boot files
set -eu
step=${1:?usage: scripts/image.sh build-deps|build OUT|runtime ROOT|check ROOT}
repo=$(cd "$(dirname "$0")/.." && pwd)
uid=10001

case $step in
build-deps)
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends ipxe libcap2-bin
    ;;
build)
    out=${2:?OUT}
    (cd "$repo" && cargo build --release --locked)
    install -D -m 0755 "$repo/target/release/pxed" "$out/usr/local/bin/pxed"
    # Ports 67/69 as a non-root user, SO_BINDTODEVICE on old kernels, ARP entries.
    setcap cap_net_bind_service,cap_net_raw,cap_net_admin=ep "$out/usr/local/bin/pxed"
    sh "$repo/boot-images/fetch-ipxe.sh" "$out/srv/pxed/boot"
    install -D -m 0644 "$repo/config/kubevirt.toml" "$out/etc/pxed/pxed.toml"
    install -d -m 0755 "$out/var/lib/pxed"
    ;;
runtime)
    root=${2:?ROOT}
    mkdir -p "$root/etc"
    grep -q "^pxed:" "$root/etc/passwd" 2>/dev/null ||
        echo "pxed:x:$uid:$uid:pxed:/var/lib/pxed:/usr/sbin/nologin" >> "$root/etc/passwd"
    grep -q "^pxed:" "$root/etc/group" 2>/dev/null || echo "pxed:x:$uid:" >> "$root/etc/group"
    # State and the config (the admin API writes edits back) belong to pxed.
    chown -R "$uid:$uid" "$root/var/lib/pxed" "$root/etc/pxed"
    chmod 0700 "$root/var/lib/pxed"
    ;;
check)
    root=${2:?ROOT}
    "$root/usr/local/bin/pxed" --version
    getcap "$root/usr/local/bin/pxed" | grep -Eq "cap_net_bind_service,cap_net_admin,cap_net_raw=ep|cap_net_admin,cap_net_bind_service,cap_net_raw=ep" ||
        { echo "image: pxed lacks its file capabilities" >&2; exit 1; }
    for f in undionly.kpxe ipxe.efi snponly.efi; do
        [ -s "$root/srv/pxed/boot/$f" ] || { echo "image: missing /srv/pxed/boot/$f" >&2; exit 1; }
    done
    "$root/usr/local/bin/pxed" check --config "$root/etc/pxed/pxed.toml" > /dev/null
    [ "$(stat -c %u "$root/var/lib/pxed")" = "$uid" ] || { echo "image: /var/lib/pxed not owned by $uid" >&2; exit 1; }
    echo "image: tree in $root is complete"
    ;;
*)
    echo "scripts/image.sh: unknown step $step" >&2
    exit 2
    ;;
esac
