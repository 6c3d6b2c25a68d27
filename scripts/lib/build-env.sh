# shellcheck shell=bash
# Sourced by scripts/build and scripts/release, from the repository root: fills in what
# docker-bake.hcl stamps an image with, unless the environment already sets it, and exports it.
#   GIT_SHA            `git rev-parse HEAD` (or "unknown" outside a checkout)
#   VERSION            [project].version of pyproject.toml
#   SOURCE_DATE_EPOCH  the commit time (`git log -1 --format=%ct`): every timestamp of the image
# A relative CA_BUNDLE is made absolute against the directory the script was started from
# ($START_DIR), since bake runs from the repository root.

if [[ -n ${CA_BUNDLE:-} && ${CA_BUNDLE} != /* ]]; then
    CA_BUNDLE="${START_DIR:-$PWD}/$CA_BUNDLE"
    export CA_BUNDLE
fi

if [[ -z ${GIT_SHA:-} ]]; then
    GIT_SHA=$(git rev-parse --verify --quiet HEAD 2>/dev/null) || GIT_SHA=unknown
fi

if [[ -z ${VERSION:-} ]]; then
    VERSION=$(
        python3 - <<'PY' 2>/dev/null || sed -n 's/^version *= *"\([^"]*\)".*/\1/p' pyproject.toml | head -n 1
import tomllib

with open("pyproject.toml", "rb") as f:
    print(tomllib.load(f)["project"]["version"])
PY
    )
    VERSION=${VERSION:-unknown}
fi

if [[ -z ${SOURCE_DATE_EPOCH:-} && $GIT_SHA != unknown ]]; then
    SOURCE_DATE_EPOCH=$(git log -1 --format=%ct "$GIT_SHA" 2>/dev/null) || SOURCE_DATE_EPOCH=
fi

export GIT_SHA VERSION SOURCE_DATE_EPOCH
