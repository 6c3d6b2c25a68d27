# Local stand-in for the mher/flower image: Flower and its dependencies at the versions pinned in
# flower-requirements.txt, from the package index pip is configured with, in a venv on the Debian
# stand-in. Built by scripts/build-local-images; only for machines that cannot pull mher/flower.
ARG BASE_IMAGE=courier-local/debian:trixie-slim
FROM ${BASE_IMAGE}

# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*
COPY flower-requirements.txt /tmp/requirements.txt
# The proxy's CA bundle, when the build needs one, as a secret (never in a layer).
RUN --mount=type=secret,id=ca_bundle \
    if [ -s /run/secrets/ca_bundle ]; then export PIP_CERT=/run/secrets/ca_bundle; fi \
 && python3 -m venv /opt/flower \
 && /opt/flower/bin/pip install --no-cache-dir --no-deps -r /tmp/requirements.txt \
 && useradd --system --uid 10001 flower

# Like mher/flower: the command is `celery flower`, configured from CELERY_BROKER_URL and the like.
ENV PATH=/opt/flower/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
USER flower
EXPOSE 5555
CMD ["celery", "flower"]
