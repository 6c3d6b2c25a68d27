# Build definition for courier's container image.
#
#   scripts/build                         # sets GIT_SHA, VERSION and BUILD_DATE, then bakes
#   docker buildx bake -f docker-bake.hcl # same, with whatever is in the environment
#   docker buildx bake -f docker-bake.hcl --print
#
# Always pass `-f docker-bake.hcl`: without it bake also reads compose.yaml and merges it in.
# Every variable below can be overridden from the environment, e.g.
#   REGISTRY=ghcr.io/acme/ VERSION=1.2.3 GIT_SHA=$(git rev-parse HEAD) docker buildx bake -f docker-bake.hcl
#
# Written for buildx >= 0.13 (only HCL functions available there are used).

# Base image of the build stages (Debian trixie, whose python3.13 matches the runtime's).
variable "BUILD_IMAGE" {
  default = "debian:trixie-slim"
}

# Base image of the runtime stage: distroless Python 3.13, user 65532, no shell.
variable "RUNTIME_IMAGE" {
  default = "gcr.io/distroless/python3-debian13:nonroot"
}

# Version of the image; scripts/build takes it from pyproject.toml.
variable "VERSION" {
  default = "0.0.0-dev"
}

# Full commit id of the source; empty means unknown.
variable "GIT_SHA" {
  default = ""
}

# RFC 3339 UTC build time; empty means now.
variable "BUILD_DATE" {
  default = ""
}

# Image repository name, and an optional registry/namespace prefix such as "ghcr.io/acme"
# (a trailing slash is optional).
variable "IMAGE" {
  default = "courier"
}
variable "REGISTRY" {
  default = ""
}

# Optional PEM bundle for building behind a TLS-intercepting corporate proxy: the public CAs plus
# the proxy's (pip trusts it instead of its own list). Passed to the build as the BuildKit
# secret "ca_bundle", never stored in the image.
variable "CA_BUNDLE" {
  default = ""
}

# Where the source lives (org.opencontainers.image.source).
variable "SOURCE" {
  default = "https://github.com/example/courier"
}

function "repo" {
  params = []
  result = REGISTRY == "" ? IMAGE : "${trimsuffix(REGISTRY, "/")}/${IMAGE}"
}

function "git_sha" {
  params = []
  result = GIT_SHA == "" ? "unknown" : GIT_SHA
}

function "build_date" {
  params = []
  result = BUILD_DATE == "" ? formatdate("YYYY-MM-DD'T'hh:mm:ss'Z'", timestamp()) : BUILD_DATE
}

# A valid tag from a version: "+" (SemVer build metadata) is not allowed in tags.
function "tag" {
  params = [version]
  result = replace(version, "+", "-")
}

# Filled in by docker/metadata-action in CI (its bake file is passed with a second -f).
target "docker-metadata-action" {}

# The runtime image, loaded into the local Docker engine.
target "image" {
  inherits   = ["docker-metadata-action"]
  context    = "."
  dockerfile = "docker/Dockerfile"
  target     = "runtime"
  args = {
    BUILD_IMAGE   = BUILD_IMAGE
    RUNTIME_IMAGE = RUNTIME_IMAGE
    VERSION       = VERSION
    GIT_SHA       = git_sha()
    BUILD_DATE    = build_date()
  }
  tags = compact([
    "${repo()}:${tag(VERSION)}",
    GIT_SHA == "" ? "" : "${repo()}:sha-${substr(GIT_SHA, 0, 7)}",
    "${repo()}:latest",
  ])
  labels = {
    "org.opencontainers.image.title"       = "courier"
    "org.opencontainers.image.description" = "One Falcon API and its Celery tasks, shipped as one small container image."
    "org.opencontainers.image.version"     = VERSION
    "org.opencontainers.image.revision"    = git_sha()
    "org.opencontainers.image.created"     = build_date()
    "org.opencontainers.image.source"      = SOURCE
    "org.opencontainers.image.licenses"    = "MIT"
    "org.opencontainers.image.base.name"   = RUNTIME_IMAGE
  }
  secret = CA_BUNDLE == "" ? [] : ["id=ca_bundle,src=${CA_BUNDLE}"]
  output = ["type=docker"]
}

# CI: the same image pushed to the registry with an SBOM and provenance; docker/metadata-action's
# tags and labels (listed last) take precedence. Needs a builder that can push and attest
# (e.g. the docker-container driver), not the local "docker" driver.
target "release" {
  inherits    = ["image", "docker-metadata-action"]
  platforms   = ["linux/amd64"]
  attest      = ["type=sbom", "type=provenance,mode=max"]
  output      = ["type=registry"]
}

group "default" {
  targets = ["image"]
}
