# pxed container image. Every RUN is a step of scripts/image.sh. CI builds this file with
# podman, without registry access, through scripts/build-image.sh (which makes the two FROM
# images locally) and runs the image in tests/container.rs.
#
#   docker build -t pxed .
#
# pxed runs as user 10001 with group 0, the way OpenShift runs any image (an arbitrary UID,
# GID 0): everything it writes (/var/lib/pxed, /etc/pxed) belongs to group 0 with the
# user's permissions, and the binary carries no file capabilities. On the host network, full
# behaviour (ports 67/69/4011, ARP entries for unicast replies) needs root with just two
# capabilities (and NET_RAW on kernels before 5.7); docker and Kubernetes do not make added
# capabilities effective for a non-root user:
#
#   docker run --network host --user 0:0 --cap-drop ALL --cap-add NET_BIND_SERVICE \
#       --cap-add NET_ADMIN -v /etc/pxed:/etc/pxed -v pxed-state:/var/lib/pxed pxed
#
# As the default non-root user pxed still starts and broadcasts its DHCP replies wherever
# binding low ports is allowed, e.g. on a macvlan network (docker sets
# net.ipv4.ip_unprivileged_port_start=0 in the container's network namespace); mounted
# config and state must then be writable by group 0:
#
#   docker network create -d macvlan -o parent=eth1 --subnet 10.123.0.0/24 pxe
#   docker run --network pxe --ip 10.123.0.1 --cap-drop ALL \
#       -v /etc/pxed:/etc/pxed -v pxed-state:/var/lib/pxed pxed

FROM docker.io/library/rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN scripts/image.sh build-deps
RUN scripts/image.sh build /out

FROM docker.io/library/debian:bookworm-slim
COPY --from=build /out/ /
COPY scripts/image.sh /usr/local/lib/pxed/image.sh
RUN /usr/local/lib/pxed/image.sh runtime /
USER 10001:0
ENV PXED_CONFIG=/etc/pxed/pxed.toml \
    PXED_LOG_FORMAT=json
EXPOSE 67/udp 69/udp 4011/udp 8080/tcp
HEALTHCHECK --interval=15s --timeout=3s --start-period=5s CMD ["/usr/local/bin/pxed", "health"]
ENTRYPOINT ["/usr/local/bin/pxed", "serve"]
