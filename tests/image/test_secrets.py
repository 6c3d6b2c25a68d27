"""No secret in the image: not in its history, its configuration, or its files."""

from __future__ import annotations

import re
import tarfile
import time
from collections.abc import Iterator
from typing import IO, Any

import docker

from tests.image.conftest import ca_bundle

# A URL with a user:password@ part.
URL_WITH_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^\s/@:]*:[^\s/@]+@", re.IGNORECASE)
# Real key material: a PEM block with a body, not just the header string some code contains.
PEM_BLOCK = re.compile(
    rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n[A-Za-z0-9+/=\r\n]{40,}?-----END \1-----"
)
SECRET_VARIABLES = (
    "API_TOKENS",
    "BROKER_URL",
    "RESULT_BACKEND",
    "BEAT_LOCK_URL",
    "CA_BUNDLE",
    "PIP_CERT",
    "REQUESTS_CA_BUNDLE",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "http_proxy",
    "https_proxy",
)


class _ChunkReader:
    """A file-like view of the byte chunks that the Docker SDK streams (for tarfile's "r|")."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        if size < 0:
            data, self._buffer = self._buffer, b""
        else:
            data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data


def pem_blocks(docker_client: docker.DockerClient, image: str) -> dict[str, set[bytes]]:
    """Every PEM block in the image's file system, by file path."""
    container = docker_client.containers.create(image)
    found: dict[str, set[bytes]] = {}
    try:
        stream: IO[bytes] = _ChunkReader(iter(container.export()))  # type: ignore[assignment]
        with tarfile.open(fileobj=stream, mode="r|") as archive:
            for member in archive:
                if not member.isfile():
                    continue
                handle = archive.extractfile(member)
                data = handle.read() if handle else b""
                if b"-----BEGIN" in data:
                    blocks = {m.group(0).replace(b"\r", b"") for m in PEM_BLOCK.finditer(data)}
                    if blocks:
                        found["/" + member.name.lstrip("./")] = blocks
    finally:
        container.remove(force=True)
    return found


def test_history_holds_no_secret(docker_client: docker.DockerClient, image_id: str) -> None:
    history = docker_client.images.get(image_id).history()
    text = "\n".join(str(step.get("CreatedBy", "")) for step in history)
    print(f"\n`docker history --no-trunc`: {len(history)} steps")
    assert "ENTRYPOINT" in text  # the history really is the image's (not an empty list)
    assert "BEGIN CERTIFICATE" not in text
    assert "PRIVATE KEY" not in text
    assert not URL_WITH_PASSWORD.search(text), text
    for name in ("PIP_CERT", "REQUESTS_CA_BUNDLE", "API_TOKENS=", "BROKER_URL="):
        assert name not in text, f"{name} in the image history"


def test_configuration_holds_no_secret(image_attrs: dict[str, Any]) -> None:
    config = image_attrs["Config"]
    env = dict(item.split("=", 1) for item in config["Env"])
    print(f"\nimage Env: {sorted(env)}")
    assert "PATH" in env
    for name in SECRET_VARIABLES:
        assert name not in env, f"{name} has a default in the image"
    everything = str(config["Env"]) + str(config["Labels"]) + str(config.get("Cmd"))
    assert "BEGIN CERTIFICATE" not in everything
    assert not URL_WITH_PASSWORD.search(everything), everything


def test_files_add_no_key_material_to_the_base(
    docker_client: docker.DockerClient, image_id: str, image_attrs: dict[str, Any]
) -> None:
    """The build's CA bundle (a secret) and any other certificate or key stay out of the files:
    every PEM block in the image is one the runtime base image already has, at the same path."""
    base = image_attrs["Config"]["Labels"]["org.opencontainers.image.base.name"]
    started = time.monotonic()
    ours = pem_blocks(docker_client, image_id)
    theirs = pem_blocks(docker_client, base)
    print(
        f"\nPEM blocks: image {sum(map(len, ours.values()))} in {len(ours)} files, base "
        f"{sum(map(len, theirs.values()))}; scanned in {time.monotonic() - started:.1f}s"
    )
    assert theirs, "no PEM block found in the base image: the scan does not work"
    added = {path: blocks - theirs.get(path, set()) for path, blocks in ours.items()}
    added = {path: blocks for path, blocks in added.items() if blocks}
    assert not added, f"files with certificates or keys the base does not have: {sorted(added)}"
    for blocks in ours.values():
        assert not any(b"PRIVATE KEY" in block for block in blocks)
    bundle = ca_bundle()
    if bundle is not None:
        # Certificates only the build's bundle has (e.g. a proxy's CA) are nowhere in the image.
        ours_all = set().union(*ours.values())
        extra = {
            m.group(0).replace(b"\r", b"") for m in PEM_BLOCK.finditer(bundle.read_bytes())
        } - set().union(*theirs.values())
        print(f"certificates only in CA_BUNDLE: {len(extra)}")
        assert not extra & ours_all
