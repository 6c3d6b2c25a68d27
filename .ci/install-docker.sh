#!/usr/bin/env bash
# Install and start a Docker engine (26.x) with buildx and compose on Debian 12, from Debian's
# trixie packages pinned low so the rest of the system stays on bookworm; the engine uses the
# containerd image store (multi-platform images and attestations live in the local engine).
# Idempotent: an engine that already answers on the containerd store, with buildx and compose, is
# left alone (what is missing of the three is installed); one on the classic store is restarted
# on it.
#
# The Debian archive is the one this machine's apt already uses (DEBIAN_MIRROR overrides it).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/lib/debian-mirror.sh
source "$HERE/../scripts/lib/debian-mirror.sh"

DAEMON_JSON=/etc/docker/daemon.json

on_containerd_store() {
    docker info --format '{{json .DriverStatus}}' 2>/dev/null | grep -q 'io.containerd.snapshotter'
}

engine_ready() {
    docker info >/dev/null 2>&1 && on_containerd_store
}
tools_ready() {
    command -v dockerd >/dev/null 2>&1 && docker buildx version >/dev/null 2>&1 &&
        docker compose version >/dev/null 2>&1
}

if ! tools_ready; then
    mirror=$(debian_mirror)
    cat > /etc/apt/sources.list.d/trixie.sources <<SOURCES
Types: deb
URIs: ${mirror}
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
    printf 'Package: *\nPin: release n=trixie\nPin-Priority: 100\n' > /etc/apt/preferences.d/trixie-low
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        docker.io/trixie docker-buildx/trixie docker-compose/trixie mmdebstrap iptables >/dev/null
fi

if engine_ready; then
    echo "docker engine answers (containerd image store), with buildx and compose"
    exit 0
fi

mkdir -p "$(dirname "$DAEMON_JSON")"
python3 - "$DAEMON_JSON" <<'PY'
import json, pathlib, sys

path = pathlib.Path(sys.argv[1])
config = json.loads(path.read_text()) if path.is_file() and path.read_text().strip() else {}
config.setdefault("features", {})["containerd-snapshotter"] = True
path.write_text(json.dumps(config, indent=2) + "\n")
PY

# An engine on the classic store (a reused machine): stop it, then start it on the new store. Its
# pid is in dockerd's default pidfile; without a live one, stop every dockerd (pgrep may list
# several, one per line), and wait until all are gone.
pids=()
pidfile=$(cat /var/run/docker.pid 2>/dev/null || true)
if [[ $pidfile =~ ^[0-9]+$ && $(cat "/proc/$pidfile/comm" 2>/dev/null) == dockerd ]]; then
    pids=("$pidfile")
else
    mapfile -t pids < <(pgrep -x dockerd || true)
fi
if ((${#pids[@]})); then
    echo "restarting the docker engine on the containerd image store (stopping dockerd ${pids[*]})"
    kill "${pids[@]}" 2>/dev/null || true
    for _ in $(seq 1 30); do
        alive=0
        for pid in "${pids[@]}"; do
            if kill -0 "$pid" 2>/dev/null; then alive=1; fi
        done
        ((alive)) || break
        sleep 1
    done
    if ((alive)); then
        echo "dockerd (${pids[*]}) did not stop within 30 s" >&2
        exit 1
    fi
fi

# A docker client elsewhere on PATH may shadow the packaged one; the engine is what matters.
setsid dockerd >/var/log/dockerd.log 2>&1 </dev/null &
for _ in $(seq 1 60); do
    if docker info >/dev/null 2>&1; then
        on_containerd_store || { echo "docker engine is not on the containerd image store" >&2; exit 1; }
        echo "docker engine is up: $(docker version --format '{{.Server.Version}}'), containerd image store"
        exit 0
    fi
    sleep 1
done
echo "docker engine did not start; last lines of /var/log/dockerd.log:" >&2
tail -n 30 /var/log/dockerd.log >&2
exit 1
