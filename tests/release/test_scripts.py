"""The release scripts' helpers, without building anything: the source label's address from the
git remote, the Debian archive from apt's sources, and scripts/build-local-images' decisions and
failures (with stand-ins for docker and mmdebstrap that record what they are asked to do)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT

LIB = ROOT / "scripts" / "lib"


def bash(script: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=cwd,
        env={"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"), **env},
        capture_output=True,
        text=True,
        check=False,
    )


# --- scripts/lib/source-url.sh -----------------------------------------------------------------

REMOTES = [
    ("git@github.com:Acme/courier.git", "https://github.com/Acme/courier"),
    ("git@github.com:acme/courier", "https://github.com/acme/courier"),
    ("https://github.com/acme/courier.git", "https://github.com/acme/courier"),
    ("https://x-access-token:s3cret@github.com/acme/courier/", "https://github.com/acme/courier"),
    ("ssh://git@git.example.com:2222/team/courier.git", "https://git.example.com/team/courier"),
    ("git.example.com:team/courier.git", "https://git.example.com/team/courier"),
    ("/srv/git/courier.git", None),  # a local path names no web address
    ("file:///srv/git/courier.git", None),
    (None, None),  # no origin remote: scripts/release keeps the Dockerfile's default
]


@pytest.mark.parametrize(("remote", "expected"), REMOTES)
def test_source_url_is_the_web_address_of_the_origin_remote(
    remote: str | None, expected: str | None, tmp_path: Path
) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    if remote is not None:
        subprocess.run(["git", "-C", str(tmp_path), "remote", "add", "origin", remote], check=True)
    result = bash(f"source {LIB / 'source-url.sh'} && source_url origin", tmp_path)
    if expected is None:
        assert (result.returncode, result.stdout) == (1, ""), result
    else:
        assert (result.returncode, result.stdout) == (0, expected + "\n"), result


# --- scripts/lib/debian-mirror.sh --------------------------------------------------------------

ARCHIVE = "http://archive.invalid/debian"
SECURITY = "http://security.invalid/debian-security"
BOOKWORM = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_CODENAME=bookworm\n'


def mirrors(
    tmp_path: Path, files: dict[str, str], os_release: str = BOOKWORM, **env: str
) -> subprocess.CompletedProcess[str]:
    apt = tmp_path / "apt"
    (apt / "sources.list.d").mkdir(parents=True)
    for name, text in files.items():
        (apt / name).write_text(text)
    (tmp_path / "os-release").write_text(os_release)
    return bash(
        f"source {LIB / 'debian-mirror.sh'}; debian_mirror; debian_security_mirror",
        tmp_path,
        DEBIAN_MIRROR_APT_DIR=str(apt),
        DEBIAN_MIRROR_OS_RELEASE=str(tmp_path / "os-release"),
        **env,
    )


def test_debian_mirror_is_the_entry_for_this_release_with_main(tmp_path: Path) -> None:
    # Read before debian.sources (names sort so), each wrong in its own way.
    third_party = """\
Types: deb
URIs: http://thirdparty.invalid/apt
Suites: stable
Components: main

Types: deb-src
URIs: http://sources.invalid/debian
Suites: bookworm
Components: main

Types: deb
URIs: http://disabled.invalid/debian
Suites: bookworm bookworm-security
Components: main
Enabled: no

Types: deb
URIs: http://updates-only.invalid/debian
Suites: bookworm-updates
Components: main

# Suites: bookworm, but not main
Types: deb
URIs: http://contrib.invalid/debian
Suites: bookworm
Components: contrib non-free
"""
    debian = f"""\
Types: deb
URIs: {ARCHIVE}/
Suites: bookworm bookworm-updates
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: {SECURITY}
Suites:
 bookworm-security
Components: main
"""
    files = {
        "sources.list.d/aaa-third-party.sources": third_party,
        "sources.list.d/cloud.list": (
            "deb [arch=amd64 signed-by=/k.gpg] http://cloud.invalid/apt cloud-bookworm main\n"
        ),
        "sources.list.d/debian.sources": debian,
    }
    result = mirrors(tmp_path, files)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [ARCHIVE, SECURITY]
    # DEBIAN_MIRROR still decides; the security archive is found on its own.
    overridden = mirrors(tmp_path / "o", files, DEBIAN_MIRROR="http://mine.invalid/debian/")
    assert overridden.stdout.splitlines() == ["http://mine.invalid/debian", SECURITY]


def test_debian_mirror_reads_one_line_sources_lists(tmp_path: Path) -> None:
    files = {
        "sources.list": (
            "# deb http://old.invalid/debian bookworm main\n"
            "deb [ arch=amd64 ] http://thirdparty.invalid/apt bookworm-backports main\n"
            f"deb {ARCHIVE} bookworm main # the archive\n"
            f"deb {SECURITY} bookworm-security main\n"
        )
    }
    result = mirrors(tmp_path, files)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [ARCHIVE, SECURITY]


def test_debian_mirror_needs_a_debian_machine_or_the_variables(tmp_path: Path) -> None:
    ubuntu = "ID=ubuntu\nID_LIKE=debian\nVERSION_CODENAME=noble\n"
    files = {"sources.list": "deb http://ubuntu.invalid/ubuntu noble main\n"}
    result = mirrors(tmp_path, files, os_release=ubuntu)
    assert result.returncode != 0
    assert "set DEBIAN_MIRROR and SECURITY_MIRROR" in result.stderr
    given = mirrors(
        tmp_path / "given",
        files,
        os_release=ubuntu,
        DEBIAN_MIRROR=ARCHIVE,
        SECURITY_MIRROR=SECURITY,
    )
    assert given.stdout.splitlines() == [ARCHIVE, SECURITY], given.stderr


# --- scripts/build-local-images, with docker and mmdebstrap stand-ins --------------------------

# Images the stand-in engine holds: "IMAGE PLATFORM" lines in $STUB_IMAGES. `buildx build` of an
# image named in $STUB_FAIL fails as BuildKit does, with its error on stderr.
FAKE_DOCKER = r"""#!/usr/bin/env bash
echo "docker $*" >>"$STUB_LOG"
last=${!#}
case "$1 ${2:-}" in
    "image inspect")
        grep -q "^$last " "$STUB_IMAGES" || exit 1
        [[ $* != *--format* ]] || echo "sha256:$(printf '%s' "$last" | sha256sum | cut -c1-64)"
        ;;
    "create --pull")
        platform=$(printf '%s\n' "$@" | grep -A1 -x -- --platform | tail -n 1)
        grep -qx "$last $platform" "$STUB_IMAGES" || { echo "no $platform" >&2; exit 1; }
        echo container-id
        ;;
    "buildx build")
        if [[ -n ${STUB_FAIL:-} && $* == *"$STUB_FAIL"* ]]; then
            echo "ERROR: failed to solve: stub: $STUB_FAIL cannot be built" >&2
            exit 1
        fi
        ;;
esac
exit 0
"""
FAKE_MMDEBSTRAP = r"""#!/usr/bin/env bash
echo "mmdebstrap $*" >>"$STUB_LOG"
for arg; do [[ $arg != *.tar ]] || : >"$arg"; done
"""
DEBIAN = "courier-local/debian:trixie-slim"
DISTROLESS = "courier-local/distroless-python3:nonroot"
SERVICES = (
    "courier-local/redis:8",
    "courier-local/rabbitmq:4",
    "courier-local/prometheus:2",
    "courier-local/flower:2",
)


def build_local_images(
    tmp_path: Path, images: list[str], fail: str = ""
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    stubs = tmp_path / "bin"
    stubs.mkdir()
    for name, text in (
        ("docker", FAKE_DOCKER),
        ("mmdebstrap", FAKE_MMDEBSTRAP),
        ("arch-test", "#!/bin/sh\n"),
    ):
        (stubs / name).write_text(text)
        (stubs / name).chmod(0o755)
    (tmp_path / "images").write_text("".join(f"{line}\n" for line in images))
    log = tmp_path / "calls.log"
    log.touch()
    result = subprocess.run(
        [str(ROOT / "scripts" / "build-local-images"), "--no-verify"],
        env={
            "PATH": f"{stubs}:/usr/bin:/bin",
            "TMPDIR": str(tmp_path),
            "DEBIAN_MIRROR": ARCHIVE,
            "SECURITY_MIRROR": SECURITY,
            "PLATFORMS": "linux/amd64,linux/arm64",
            "STUB_LOG": str(log),
            "STUB_IMAGES": str(tmp_path / "images"),
            "STUB_FAIL": fail,
        },
        capture_output=True,
        text=True,
        check=False,
    )
    return result, log.read_text().splitlines()


def multi_platform_builds(calls: list[str]) -> list[str]:
    """The images built from root file systems for both platforms."""
    prefix = (
        "docker buildx build --quiet --platform linux/amd64,linux/arm64 --output type=image,name="
    )
    return [c.removeprefix(prefix).split()[0] for c in calls if c.startswith(prefix)]


def test_a_stand_in_lacking_a_platform_is_rebuilt_for_both(tmp_path: Path) -> None:
    # A machine reused from before: an amd64-only Debian stand-in, a complete distroless one.
    images = [
        f"{DEBIAN} linux/amd64",
        f"{DISTROLESS} linux/amd64",
        f"{DISTROLESS} linux/arm64",
        *(f"{service} linux/amd64" for service in SERVICES),
    ]
    result, calls = build_local_images(tmp_path, images)
    print(f"\n{result.stderr}")
    assert result.returncode == 0, result.stderr
    assert f"{DEBIAN} lacks linux/arm64: rebuilding it for linux/amd64,linux/arm64" in result.stderr
    assert f"{DISTROLESS} exists, skipping" in result.stderr
    mmdebstrap = [c for c in calls if c.startswith("mmdebstrap ")]
    assert sorted(c.split("--architectures=")[1].split()[0] for c in mmdebstrap) == [
        "amd64",
        "arm64",
    ]
    assert multi_platform_builds(calls) == [DEBIAN, "courier-local/sbom-scanner:1"]
    # The services build FROM the Debian stand-in: rebuilt on the new one.
    for service in SERVICES:
        assert f"{DEBIAN} was rebuilt: rebuilding {service} too" in result.stderr


def test_a_failed_build_of_a_stand_in_fails_the_script_with_the_tools_error(
    tmp_path: Path,
) -> None:
    result, calls = build_local_images(tmp_path, [f"{DEBIAN} linux/amd64"], fail=DEBIAN)
    print(f"\n{result.stderr}")
    assert result.returncode != 0
    assert f"ERROR: failed to solve: stub: {DEBIAN} cannot be built" in result.stderr
    assert f"docker buildx build failed for {DEBIAN}" in result.stderr
    assert f"built {DEBIAN}" not in result.stderr
    # It stops there: nothing after the failed base is built.
    assert multi_platform_builds(calls) == [DEBIAN]
    assert not result.stdout  # no `export ...` line, as after a success
