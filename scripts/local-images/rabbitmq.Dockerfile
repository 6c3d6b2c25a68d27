# Local stand-in for the official rabbitmq:4 image, from Debian's rabbitmq-server package.
# Built by scripts/build-local-images; only for machines that cannot pull rabbitmq:4.
ARG BASE_IMAGE=courier-local/debian:trixie-slim
FROM ${BASE_IMAGE}

# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends rabbitmq-server \
 && rm -rf /var/lib/apt/lists/*

# Like rabbitmq:4: guest/guest may log in from other hosts, logs go to standard output.
COPY <<'CONF' /etc/rabbitmq/rabbitmq.conf
loopback_users.guest = false
listeners.tcp.default = 5672
log.console = true
log.console.level = info
log.file = false
CONF

# /usr/lib/rabbitmq/bin first: Debian's /usr/sbin wrappers send the server's output to
# /var/log/rabbitmq/startup_log instead of standard output.
ENV PATH=/usr/lib/rabbitmq/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    RABBITMQ_LOGS=- \
    HOME=/var/lib/rabbitmq
USER rabbitmq
WORKDIR /var/lib/rabbitmq
VOLUME /var/lib/rabbitmq
EXPOSE 5672
CMD ["rabbitmq-server"]
