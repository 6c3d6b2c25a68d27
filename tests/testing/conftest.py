"""Helpers of the tests of `courier.testing` itself: what the engine still holds of a stack."""

from __future__ import annotations

import uuid

import docker

from courier.testing import LABEL, STACK_LABEL


def stack_name(purpose: str) -> str:
    """A stack name no other run uses (the engine is shared)."""
    return f"courier-testing-{purpose}-{uuid.uuid4().hex[:8]}"


def leftovers(client: docker.DockerClient, stack: str) -> list[str]:
    """Every container and network still carrying the stack's label."""
    selector = {"label": f"{STACK_LABEL}={stack}"}
    containers = [f"container {c.name}" for c in client.containers.list(all=True, filters=selector)]
    networks = [f"network {n.name}" for n in client.networks.list(filters=selector)]
    return containers + networks


def labelled(client: docker.DockerClient, name: str) -> list[str]:
    """Containers named `name` that carry courier.testing's label (running or not)."""
    found = client.containers.list(all=True, filters={"name": f"^{name}$", "label": LABEL})
    return [container.name for container in found]
