# Local stand-in for the official prom/prometheus image, from Debian's prometheus package.
# Built by scripts/build-local-images; only for machines that cannot pull prom/prometheus.
ARG BASE_IMAGE=courier-local/debian:trixie-slim
FROM ${BASE_IMAGE}

# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends prometheus \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /prometheus \
 && chown prometheus:prometheus /prometheus

# Like prom/prometheus: the binary is the entrypoint, the configuration in /etc/prometheus and
# the data in /prometheus.
USER prometheus
WORKDIR /prometheus
VOLUME /prometheus
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
