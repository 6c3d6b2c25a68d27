# Build definition for courier's container image.
#
#   scripts/build                          # local image: sets GIT_SHA, VERSION, SOURCE_DATE_EPOCH
#   REGISTRY=HOST/NS VERSION=1.2.3 scripts/release   # both platforms, attested, pushed
#   docker buildx bake -f docker-bake.hcl [TARGET] --print
#
# Always pass `-f docker-bake.hcl`: without it bake also reads compose.yaml and merges it in.
# Every variable can be set from the environment. Those defaulting to null are left to the
# Dockerfile, whose ARG holds the one default (base images, version, source URL).
#
# Written for buildx >= 0.13 (only HCL functions available there are used).

# Base of the build stages (Debian trixie, whose python3.13 matches the runtime's).
variable "BUILD_IMAGE" {
  default = null
}

# Base of the runtime stage: distroless Python 3.13, user 65532, no shell.
variable "RUNTIME_IMAGE" {
  default = null
}

# Version of the image (SemVer); scripts/build takes it from pyproject.toml.
variable "VERSION" {
  default = null
}

# Full commit id of the source; empty means unknown.
variable "GIT_SHA" {
  default = ""
}

# Commit time, seconds since the epoch (`git log -1 --format=%ct`): the image's timestamps and
# its created label. Empty: now (not reproducible).
variable "SOURCE_DATE_EPOCH" {
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

# Where the source lives (the image's source label).
variable "SOURCE" {
  default = null
}

# Optional PEM bundle for building behind a TLS-intercepting corporate proxy: the public CAs plus
# the proxy's (pip trusts it instead of its own list). Passed as the BuildKit secret "ca_bundle",
# never stored in the image.
variable "CA_BUNDLE" {
  default = ""
}

# Optional package indexes (a PyPI mirror): passed as secrets, so a URL with credentials shows in
# neither the image nor its provenance.
variable "PIP_INDEX_URL" {
  default = ""
}
variable "PIP_EXTRA_INDEX_URL" {
  default = ""
}

# Platforms of the release, comma-separated.
variable "PLATFORMS" {
  default = "linux/amd64,linux/arm64"
}

# The image that writes the release's SBOM, speaking BuildKit's SBOM scanner protocol: BuildKit's
# default upstream; scripts/build-local-images builds a local one for machines without a registry.
variable "SBOM_GENERATOR" {
  default = "docker/buildkit-syft-scanner:stable-1"
}

function "repo" {
  params = []
  result = REGISTRY == "" ? IMAGE : "${trimsuffix(REGISTRY, "/")}/${IMAGE}"
}

function "git_sha" {
  params = []
  result = GIT_SHA == "" ? "unknown" : GIT_SHA
}

# RFC 3339 UTC: the commit time when SOURCE_DATE_EPOCH is set, else now.
function "build_date" {
  params = []
  result = formatdate("YYYY-MM-DD'T'hh:mm:ss'Z'", SOURCE_DATE_EPOCH == "" ? timestamp() : timeadd("1970-01-01T00:00:00Z", "${SOURCE_DATE_EPOCH}s"))
}

# A valid tag from a version: "+" (SemVer build metadata) is not allowed in tags.
function "tag" {
  params = [version]
  result = replace(version, "+", "-")
}

# The release's tags, the one definition of the scheme (scripts/release and release.yml both
# push what this gives): 1.2.3, 1.2, sha-<full commit>, latest; a pre-release (1.2.3-rc.1) gets
# only its own tag and the sha tag. SemVer build metadata (+build.5) is dropped: "+" cannot be in
# a tag, and 1.2.3+build.5 is release 1.2.3.
function "release_tags" {
  params = []
  result = VERSION == null ? [] : compact([
    "${repo()}:${regex_replace(VERSION, "\\+.*$", "")}",
    length(regexall("^[0-9]+\\.[0-9]+\\.[0-9]+(\\+.*)?$", VERSION)) > 0 ? "${repo()}:${regex("^[0-9]+\\.[0-9]+", VERSION)}" : "",
    GIT_SHA == "" ? "" : "${repo()}:sha-${GIT_SHA}",
    length(regexall("^[0-9]+\\.[0-9]+\\.[0-9]+(\\+.*)?$", VERSION)) > 0 ? "${repo()}:latest" : "",
  ])
}

# What every target builds: the Dockerfile's runtime stage with the stamps of this build.
target "_common" {
  context    = "."
  dockerfile = "docker/Dockerfile"
  target     = "runtime"
  args = {
    BUILD_IMAGE       = BUILD_IMAGE
    RUNTIME_IMAGE     = RUNTIME_IMAGE
    VERSION           = VERSION
    SOURCE            = SOURCE
    GIT_SHA           = git_sha()
    BUILD_DATE        = build_date()
    SOURCE_DATE_EPOCH = SOURCE_DATE_EPOCH == "" ? null : SOURCE_DATE_EPOCH
  }
  secret = concat(
    CA_BUNDLE == "" ? [] : ["id=ca_bundle,src=${CA_BUNDLE}"],
    PIP_INDEX_URL == "" ? [] : ["id=pip_index_url,env=PIP_INDEX_URL"],
    PIP_EXTRA_INDEX_URL == "" ? [] : ["id=pip_extra_index_url,env=PIP_EXTRA_INDEX_URL"],
  )
}

# The runtime image for this machine's platform, loaded into the local Docker engine.
target "image" {
  inherits = ["_common"]
  tags = compact([
    VERSION == null ? "" : "${repo()}:${tag(VERSION)}",
    GIT_SHA == "" ? "" : "${repo()}:sha-${substr(GIT_SHA, 0, 7)}",
    "${repo()}:latest",
  ])
  output = ["type=docker"]
}

target "_release-tags" {
  tags = release_tags()
}

# The release: both platforms, provenance (mode=max) and an SBOM per platform, pushed with file
# times rewritten to SOURCE_DATE_EPOCH so that two builds of one commit are bit-identical. CI
# (release.yml, a docker-container builder) builds it as it is. The engine's own builder (the
# "docker" driver) cannot rewrite timestamps while pushing: scripts/release writes an OCI archive
# instead and pushes that with skopeo.
target "release" {
  inherits  = ["_common", "_release-tags"]
  platforms = split(",", PLATFORMS)
  attest    = ["type=sbom,generator=${SBOM_GENERATOR}", "type=provenance,mode=max"]
  output    = ["type=registry,rewrite-timestamp=true"]
}

group "default" {
  targets = ["image"]
}

# Checks (docker/validate.Dockerfile): `docker buildx bake -f docker-bake.hcl validate`.
group "validate" {
  targets = ["hadolint", "zizmor"]
}

target "_poetry" {
  inherits = ["_common"]
  target   = "poetry"
}

target "_validate" {
  inherits   = ["_common"]
  dockerfile = "docker/validate.Dockerfile"
  contexts = {
    poetry = "target:_poetry"
  }
  output = ["type=cacheonly"]
}

target "hadolint" {
  description = "hadolint on every Dockerfile (warnings fail)"
  inherits    = ["_validate"]
  target      = "hadolint"
}

target "zizmor" {
  description = "zizmor, offline and pedantic, on the workflows"
  inherits    = ["_validate"]
  target      = "zizmor"
}
