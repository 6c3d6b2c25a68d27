# Baseline for the image-size comparison: a plain single-stage image of the same project,
# the way it is often done (Debian slim, Poetry inside the image, `poetry install`).
# Not used to ship courier; docker/Dockerfile is the real image.
#
#   docker buildx build -f tests/images/single-stage.Dockerfile \
#       [--secret id=ca_bundle,src=/path/to/ca.pem] --load -t courier-single-stage .
ARG BUILD_IMAGE=debian:trixie-slim
FROM ${BUILD_IMAGE}

# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*

ARG POETRY_VERSION=2.5.1
ARG POETRY_EXPORT_VERSION=1.10.1
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PIP_NO_CACHE_DIR=1 \
    POETRY_NO_INTERACTION=1 \
    POETRY_VIRTUALENVS_IN_PROJECT=true \
    POETRY_CACHE_DIR=/tmp/poetry-cache
RUN --mount=type=secret,id=ca_bundle \
    if [ -s /run/secrets/ca_bundle ]; then \
        export PIP_CERT=/run/secrets/ca_bundle REQUESTS_CA_BUNDLE=/run/secrets/ca_bundle; \
    fi \
 && python3 -m venv /opt/tools/poetry \
 && /opt/tools/poetry/bin/pip install "poetry==${POETRY_VERSION}" "poetry-plugin-export==${POETRY_EXPORT_VERSION}"

WORKDIR /app
COPY . .
RUN --mount=type=secret,id=ca_bundle \
    if [ -s /run/secrets/ca_bundle ]; then \
        export PIP_CERT=/run/secrets/ca_bundle REQUESTS_CA_BUNDLE=/run/secrets/ca_bundle; \
    fi \
 && /opt/tools/poetry/bin/poetry install --only main \
 && rm -rf /tmp/poetry-cache

ENV PATH=/app/.venv/bin:$PATH
EXPOSE 5001
CMD ["python", "-m", "courier"]
