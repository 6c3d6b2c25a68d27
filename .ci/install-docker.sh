#!/usr/bin/env bash
# Install and start a Docker engine (26.x) with buildx and compose on Debian 12, from Debian's
# trixie packages pinned low so the rest of the system stays on bookworm. Idempotent.
set -euo pipefail

if docker info >/dev/null 2>&1; then
    echo "docker engine already answers"
    exit 0
fi

if ! command -v dockerd >/dev/null 2>&1 || ! docker buildx version >/dev/null 2>&1 || ! docker compose version >/dev/null 2>&1; then
    cat > /etc/apt/sources.list.d/trixie.sources <<'SOURCES'
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
    printf 'Package: *\nPin: release n=trixie\nPin-Priority: 100\n' > /etc/apt/preferences.d/trixie-low
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        docker.io/trixie docker-buildx/trixie docker-compose/trixie mmdebstrap iptables >/dev/null
fi

# A docker client elsewhere on PATH may shadow the packaged one; the engine is what matters.
setsid dockerd >/var/log/dockerd.log 2>&1 </dev/null &
for _ in $(seq 1 60); do
    if docker info >/dev/null 2>&1; then
        echo "docker engine is up: $(docker version --format '{{.Server.Version}}')"
        exit 0
    fi
    sleep 1
done
echo "docker engine did not start; last lines of /var/log/dockerd.log:" >&2
tail -n 30 /var/log/dockerd.log >&2
exit 1
