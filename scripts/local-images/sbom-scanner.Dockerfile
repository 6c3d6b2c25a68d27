# Local SBOM generator (BuildKit's SBOM scanner protocol), for machines that cannot pull BuildKit's
# default one: `SBOM_GENERATOR=courier-local/sbom-scanner:1` (docker-bake.hcl). Built by
# scripts/build-local-images on the distroless stand-in, for every platform it has; copies only.
ARG BASE_IMAGE=courier-local/distroless-python3:nonroot
FROM ${BASE_IMAGE}
COPY sbom_scanner.py /opt/sbom-scanner/sbom_scanner.py
# Root, as BuildKit's own scanner: the output folder BuildKit mounts belongs to root. It only
# reads the (read-only) scanned file system and writes its SBOM there.
# hadolint ignore=DL3002
USER 0:0
ENTRYPOINT ["/usr/bin/python3.13", "/opt/sbom-scanner/sbom_scanner.py"]
