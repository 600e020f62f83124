# pxed container image. Every RUN is a step of scripts/image.sh, which tests/deploy.rs also
# runs on CI, so this recipe is exercised without a container engine.
#
#   docker build -t pxed .
#   docker run --network host --cap-add NET_BIND_SERVICE --cap-add NET_RAW --cap-add NET_ADMIN \
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
USER 10001:10001
ENV PXED_CONFIG=/etc/pxed/pxed.toml \
    PXED_LOG_FORMAT=json
EXPOSE 67/udp 69/udp 4011/udp 8080/tcp
HEALTHCHECK --interval=15s --timeout=3s --start-period=5s CMD ["/usr/local/bin/pxed", "health"]
ENTRYPOINT ["/usr/local/bin/pxed", "serve"]
