# Local stand-in for the official redis:8 image, from Debian's redis-server package.
# Built by scripts/build-local-images; only for machines that cannot pull redis:8.
ARG BASE_IMAGE=courier-local/debian:trixie-slim
FROM ${BASE_IMAGE}

# Debian builds Redis with TLS support, so --tls-port/--tls-cert-file work as in redis:8.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends redis-server redis-tools \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /data \
 && chown redis:redis /data

# Like redis:8 (whose build turns protected mode off), `redis-server ...` with any arguments
# runs without protected mode unless asked for; the option comes first so later ones win.
COPY --chmod=0755 <<'SH' /usr/local/bin/redis-server
#!/bin/sh
case "${1:-}" in
    -v | --version | -h | --help | --test-memory | --check-system) exec /usr/bin/redis-server "$@" ;;
    "" | -*) exec /usr/bin/redis-server --protected-mode no "$@" ;;
    *) conf=$1; shift; exec /usr/bin/redis-server "$conf" --protected-mode no "$@" ;;
esac
SH

USER redis
WORKDIR /data
VOLUME /data
EXPOSE 6379
CMD ["redis-server", "--protected-mode", "no"]
