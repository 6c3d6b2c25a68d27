"""Layer caching: a change under src/ alone reuses the export and dependency layers; only the
small layer with courier itself is rebuilt. And the same inputs built again without the cache give
the same layers: nothing in them depends on when a stage ran or a copy was made.

The build runs on a copy of the build inputs in a temporary directory, never the working tree.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
import shutil
import subprocess
import tarfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest

from tests.conftest import ROOT
from tests.image.conftest import bake_env, mb

BUILD_INPUTS = (
    "pyproject.toml",
    "poetry.lock",
    "README.md",
    "VERSION.tmpl",
    ".dockerignore",
    "docker-bake.hcl",
    "docker",
    "src",
)
IMAGE = "courier-cachetest"
GIT_SHA = "c0ffee0000000000000000000000000000000000"
VERSION = "0.0.0-cachetest"
EPOCH = 1893456000
STEP = re.compile(r"^#(\d+) \[(\S+) (\d+)/(\d+)\] (.*)$")


@dataclass(frozen=True)
class Step:
    stage: str
    instruction: str
    cached: bool


def parse_steps(output: str) -> list[Step]:
    """The Dockerfile steps of a `--progress=plain` build and whether each was CACHED."""
    names: dict[str, tuple[str, str]] = {}
    cached: set[str] = set()
    for line in output.splitlines():
        match = STEP.match(line)
        if match:
            names[match.group(1)] = (match.group(2), match.group(5))
        elif re.match(r"^#\d+ CACHED$", line):
            cached.add(line.split()[0][1:])
    return [Step(stage, text, number in cached) for number, (stage, text) in names.items()]


@pytest.fixture
def built_ids() -> list[str]:
    """Ids of the images the test built (removed by `build_copy`)."""
    return []


@pytest.fixture
def build_copy(
    tmp_path: Path, docker_client: docker.DockerClient, built_ids: list[str]
) -> Iterator[Path]:
    """A copy of the build inputs; every courier-cachetest image is removed afterwards."""
    copy = tmp_path / "courier"
    copy.mkdir()
    for name in BUILD_INPUTS:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, copy / name)
    yield copy
    tagged = [image.id for image in docker_client.images.list(name=IMAGE)]
    for image_id in dict.fromkeys([*tagged, *reversed(built_ids)]):
        with contextlib.suppress(docker.errors.ImageNotFound):
            docker_client.images.remove(image_id, force=True)


def bake(directory: Path, epoch: int, *options: str) -> tuple[str, float]:
    env = bake_env(IMAGE=IMAGE, GIT_SHA=GIT_SHA, VERSION=VERSION, SOURCE_DATE_EPOCH=str(epoch))
    started = time.monotonic()
    result = subprocess.run(
        ["docker", "buildx", "bake", "-f", "docker-bake.hcl", "--progress=plain", *options],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.monotonic() - started
    assert result.returncode == 0, f"bake failed:\n{result.stderr[-4000:]}"
    return result.stdout + result.stderr, seconds


def layers(docker_client: docker.DockerClient) -> tuple[str, list[str], list[Any]]:
    image = docker_client.images.get(f"{IMAGE}:sha-{GIT_SHA[:7]}")
    return image.id, image.attrs["RootFS"]["Layers"], image.history()


def entry(layer: tarfile.TarFile, member: tarfile.TarInfo) -> tuple[object, ...]:
    """What a layer's tar says of one entry: size, mode, owner, times, type, link, content."""
    content = layer.extractfile(member) if member.isfile() else None
    digest = hashlib.sha256(content.read()).hexdigest()[:12] if content else ""
    return (
        member.size,
        oct(member.mode),
        (member.uid, member.gid),
        member.mtime,
        member.type,
        member.linkname,
        dict(member.pax_headers),
        digest,
    )


def layer_differences(docker_client: docker.DockerClient, *image_ids: str) -> str:
    """What differs between the images' layers, entry by entry (header fields and content): the
    message of a failed layer comparison."""
    listings = []
    for image_id in image_ids:
        archive = io.BytesIO(b"".join(docker_client.images.get(image_id).save()))
        with tarfile.open(fileobj=archive) as saved:
            manifest = json.load(saved.extractfile("manifest.json"))  # type: ignore[arg-type]
            layers = []
            for name in manifest[0]["Layers"]:
                with tarfile.open(fileobj=saved.extractfile(name)) as layer:
                    layers.append({m.name: entry(layer, m) for m in layer.getmembers()})
            listings.append(layers)
    report = []
    for index, (first, second) in enumerate(zip(*listings, strict=False)):
        changed = sorted(n for n in first.keys() | second.keys() if first.get(n) != second.get(n))
        if changed:
            report.append(f"layer {index}: {len(changed)} of {len(first)} entries differ, e.g.:")
            report += [f"  {n}: {first.get(n)} -> {second.get(n)}" for n in changed[:15]]
    return "\n".join(report) or "the layers' entries are equal (only the tar encoding differs)"


def test_source_change_rebuilds_only_the_courier_layer(
    build_copy: Path,
    built_ids: list[str],
    docker_client: docker.DockerClient,
    courier_image: str,
) -> None:
    # First build: the same inputs as the session's image, so mostly from its cache.
    _, first_seconds = bake(build_copy, EPOCH)
    first_id, first_layers, _ = layers(docker_client)
    built_ids.append(first_id)
    # Its own tag keeps it once the second build takes the first one (an untagged image is
    # garbage, and gone, in the containerd image store): a failed comparison reads it.
    docker_client.images.get(first_id).tag(IMAGE, "first")

    module = build_copy / "src" / "courier" / "__init__.py"
    # Unique per run: the change of an earlier run is in the build cache.
    module.write_text(module.read_text() + f"# cache test {uuid.uuid4().hex}: src/ only\n")
    # A new commit: new sources and a new commit time (SOURCE_DATE_EPOCH must not bust the cache).
    output, second_seconds = bake(build_copy, EPOCH + 3600)
    second_id, second_layers, history = layers(docker_client)
    built_ids.append(second_id)
    steps = parse_steps(output)
    print(
        f"\ncache test: first bake {first_seconds:.1f}s, after a src/ change {second_seconds:.1f}s"
    )
    for step in steps:
        state = "CACHED " if step.cached else "rebuilt"
        print(f"  {state} [{step.stage}] {step.instruction[:70]}")

    def in_stage(stage: str) -> list[Step]:
        found = [s for s in steps if s.stage == stage]
        assert found, f"no step of stage {stage!r} in the build output:\n{output[-3000:]}"
        return found

    # Poetry, its export, and the locked dependencies: all reused. (FROM only resolves a base.)
    for stage in ("base", "poetry", "export", "venv"):
        rebuilt = [
            s.instruction[:80]
            for s in in_stage(stage)
            if not s.cached and not s.instruction.startswith("FROM ")
        ]
        assert not rebuilt, f"{stage} steps rebuilt after a src/ change: {rebuilt}"
    assert any("install-wheels" in s.instruction for s in in_stage("venv")), (
        "the dependency install step is not in the build output"
    )
    # courier itself: rebuilt.
    wheel = {s.instruction: s.cached for s in in_stage("wheel")}
    assert wheel.get("COPY src/ src/") is False, wheel
    assert not any(cached for text, cached in wheel.items() if "poetry" in text), wheel
    install = [s for s in in_stage("courier") if "--destdir /out" in s.instruction]
    assert install, "the courier install step is not in the build output"
    assert not install[0].cached, install
    runtime = {s.instruction: s.cached for s in in_stage("runtime")}
    assert runtime.get("COPY --link --from=venv /out/ /") is True, runtime
    assert runtime.get("COPY --link --from=courier /out/ /") is False, runtime

    # In the image: every layer but the last (courier) is the same; the new one is small.
    assert second_id != first_id
    assert second_layers[:-1] == first_layers[:-1], layer_differences(
        docker_client, first_id, second_id
    )
    assert second_layers[-1] != first_layers[-1]
    sizes = [int(step["Size"]) for step in history if int(step["Size"]) > 0]
    print(f"  layer sizes (newest first): {', '.join(f'{mb(s):.2f} MB' for s in sizes)}")
    assert sizes[0] < 2_000_000, f"the courier layer is {mb(sizes[0]):.2f} MB"

    # The same inputs built again, uncached, in a later second: the stages the runtime copies from
    # run again and the copies are made again, and every layer is the same. (BuildKit keys a copy
    # by the contents it copies, without their times: when a stage has run twice, a cached copy may
    # take either run's files, so any time left in them would make the layer vary.)
    docker_client.images.get(second_id).tag(IMAGE, "second")
    time.sleep(1.1)
    stages = ["venv", "stdlib-bytecode", "courier", "runtime"]
    (build_copy / "uncached.hcl").write_text(
        f'target "image" {{\n  no-cache-filter = {json.dumps(stages)}\n}}\n'
    )
    output, _ = bake(build_copy, EPOCH + 3600, "-f", "uncached.hcl")
    third_id, third_layers, _ = layers(docker_client)
    built_ids.append(third_id)
    ran = [
        s
        for s in parse_steps(output)
        if s.stage in stages and not s.instruction.startswith("FROM ")
    ]
    assert {s.stage for s in ran} == set(stages), ran
    assert not any(s.cached for s in ran), [s for s in ran if s.cached]
    assert third_layers == second_layers, layer_differences(docker_client, second_id, third_id)
