"""A BuildKit SBOM generator for machines that cannot pull BuildKit's default one.

BuildKit's SBOM scanner protocol (moby/buildkit docs/attestations/sbom-protocol.md): the image runs
with the scanned root file system read-only at $BUILDKIT_SCAN_SOURCE (and optional extra ones in
the folder $BUILDKIT_SCAN_SOURCE_EXTRAS) and writes one in-toto statement per file system to
$BUILDKIT_SCAN_DESTINATION/<name>.spdx.json, whose predicate is an SPDX 2.3 JSON document.

It lists what courier's images hold: the Python distributions of every site-packages or
dist-packages folder (`*.dist-info/METADATA`: name, version, license, purl pkg:pypi/...) and the
Debian packages (`/var/lib/dpkg/status`, or distroless's `/var/lib/dpkg/status.d/*`: name,
version, architecture, source, purl pkg:deb/debian/...). Standard library only.

Nothing in the document comes from the scanner's clock, so that one file system always gives one
document: its `created` time is SOURCE_DATE_EPOCH when set (a scan by hand: BuildKit passes a
generator no such variable, nor attest parameters, checked with Docker 26's BuildKit), else the
newest modification time of the package metadata it lists, i.e. when the newest of those packages
was installed. (BuildKit scans before the exporter rewrites file times, so in a release build that
is when the build installed the Python packages, not the commit time.)

Run by hand: `python3 sbom_scanner.py ROOTFS` prints the SPDX document of ROOTFS.
"""

from __future__ import annotations

import email.parser
import hashlib
import json
import os
import re
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

TOOL = "courier-sbom-scanner-1"
SPDX_ID_UNSAFE = re.compile(r"[^A-Za-z0-9.-]+")


@dataclass(frozen=True)
class Package:
    ecosystem: str  # "pypi" or "deb"
    name: str
    version: str
    purl: str
    license: str = "NOASSERTION"
    source_info: str = ""
    # When its metadata file was last written (seconds since the epoch): not part of its identity.
    installed: float = field(default=0.0, compare=False)

    @property
    def spdx_id(self) -> str:
        return "SPDXRef-Package-" + SPDX_ID_UNSAFE.sub(
            "-", f"{self.ecosystem}-{self.name}-{self.version}"
        )


def pypi_purl(name: str, version: str) -> str:
    normalized = re.sub(r"[-_.]+", "-", name).lower()
    return f"pkg:pypi/{quote(normalized)}@{quote(version)}"


def python_packages(root: Path) -> Iterator[Package]:
    """Every distribution installed under a site-packages or dist-packages folder of `root`
    (symbolic links are not followed; a running system's /proc, /sys and /dev are skipped)."""
    parser = email.parser.HeaderParser()
    for folder, subfolders, _ in os.walk(root):
        if Path(folder) == root:
            subfolders[:] = [d for d in subfolders if d not in ("proc", "sys", "dev")]
        subfolders.sort()
        if Path(folder).name not in ("site-packages", "dist-packages"):
            continue
        for dist_info in [d for d in subfolders if d.endswith(".dist-info")]:
            metadata = Path(folder, dist_info, "METADATA")
            if not metadata.is_file():
                continue
            headers = parser.parsestr(metadata.read_text(encoding="utf-8", errors="replace"))
            name, version = headers.get("Name"), headers.get("Version")
            if not name or not version:
                continue
            license_ = headers.get("License-Expression") or "NOASSERTION"
            where = "/" + str(Path(folder).relative_to(root))
            yield Package(
                "pypi",
                name,
                version,
                pypi_purl(name, version),
                license_,
                where,
                metadata.stat().st_mtime,
            )


def _paragraphs(text: str) -> Iterator[dict[str, str]]:
    """The RFC 822-style paragraphs of a dpkg status file (continuation lines folded)."""
    for block in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = ""
        for line in block.splitlines():
            if line[:1] in (" ", "\t") and key:
                fields[key] += "\n" + line.strip()
            elif ":" in line:
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
        if fields:
            yield fields


def os_version(root: Path) -> str:
    """VERSION_ID of the file system's /etc/os-release (e.g. "13"), empty if unknown."""
    for candidate in ("etc/os-release", "usr/lib/os-release"):
        path = root / candidate
        if path.is_file():
            match = re.search(r'^VERSION_ID="?([^"\n]*)"?', path.read_text(), re.M)
            if match:
                return match.group(1)
    return ""


def debian_packages(root: Path) -> Iterator[Package]:
    """The installed Debian packages: dpkg's status file, or distroless's status.d folder."""
    dpkg = root / "var/lib/dpkg"
    files = [dpkg / "status"] if (dpkg / "status").is_file() else []
    if (dpkg / "status.d").is_dir():
        files += sorted(p for p in (dpkg / "status.d").iterdir() if p.suffix != ".md5sums")
    distro = os_version(root)
    for path in files:
        installed = path.stat().st_mtime
        for fields in _paragraphs(path.read_text(encoding="utf-8", errors="replace")):
            status = fields.get("Status", "install ok installed")
            name, version = fields.get("Package"), fields.get("Version")
            if not name or not version or not status.endswith(" installed"):
                continue
            qualifiers = [f"arch={fields['Architecture']}"] if "Architecture" in fields else []
            if distro:
                qualifiers.append(f"distro=debian-{distro}")
            source = fields.get("Source", "").split(" ")[0]
            purl = f"pkg:deb/debian/{quote(name)}@{quote(version)}"
            if qualifiers:
                purl += "?" + "&".join(qualifiers)
            yield Package(
                "deb",
                name,
                version,
                purl,
                source_info=source and f"source {source}",
                installed=installed,
            )


def created(packages: list[Package]) -> str:
    """The document's creation time, RFC 3339 UTC: SOURCE_DATE_EPOCH, else when the newest of
    `packages` was installed (the epoch itself for none): never the scanner's clock."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if epoch and not epoch.isdigit():
        raise SystemExit(f"{TOOL}: SOURCE_DATE_EPOCH is not a number of seconds: {epoch!r}")
    seconds = int(epoch) if epoch else int(max((p.installed for p in packages), default=0))
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def spdx_document(root: Path, name: str) -> dict[str, Any]:
    packages = sorted(
        {p.spdx_id: p for p in [*python_packages(root), *debian_packages(root)]}.values(),
        key=lambda p: p.spdx_id,
    )
    digest = hashlib.sha256("\n".join(p.purl for p in packages).encode()).hexdigest()
    spdx_packages: list[dict[str, Any]] = []
    for package in packages:
        entry: dict[str, Any] = {
            "name": package.name,
            "SPDXID": package.spdx_id,
            "versionInfo": package.version,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": False,
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": package.license,
            "copyrightText": "NOASSERTION",
            "externalRefs": [
                {
                    "referenceCategory": "PACKAGE-MANAGER",
                    "referenceType": "purl",
                    "referenceLocator": package.purl,
                }
            ],
        }
        if package.source_info:
            entry["sourceInfo"] = package.source_info
        spdx_packages.append(entry)
    return {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": name,
        "documentNamespace": f"https://spdx.org/spdxdocs/{name}-{uuid.UUID(digest[:32])}",
        "creationInfo": {
            "created": created(packages),
            "creators": [f"Tool: {TOOL}"],
        },
        "packages": spdx_packages,
        "relationships": [
            {
                "spdxElementId": "SPDXRef-DOCUMENT",
                "relationshipType": "DESCRIBES",
                "relatedSpdxElement": package["SPDXID"],
            }
            for package in spdx_packages
        ],
    }


def statement(document: dict[str, Any]) -> dict[str, Any]:
    """The in-toto statement BuildKit expects (it fills in the subject itself)."""
    return {
        "_type": "https://in-toto.io/Statement/v0.1",
        "predicateType": "https://spdx.dev/Document",
        "subject": [],
        "predicate": document,
    }


def scan(source: Path, destination: Path) -> Path:
    out = destination / f"{source.name}.spdx.json"
    out.write_text(json.dumps(statement(spdx_document(source, source.name)), indent=1))
    return out


def main(argv: list[str]) -> int:
    if len(argv) == 2:  # by hand: print the document of one root file system
        print(json.dumps(spdx_document(Path(argv[1]), Path(argv[1]).name or "rootfs"), indent=1))
        return 0
    source, destination = (
        os.environ.get("BUILDKIT_SCAN_SOURCE"),
        os.environ.get("BUILDKIT_SCAN_DESTINATION"),
    )
    if not source or not destination or len(argv) != 1:
        print(
            "usage: sbom_scanner.py ROOTFS, or as a BuildKit SBOM generator with "
            "BUILDKIT_SCAN_SOURCE and BUILDKIT_SCAN_DESTINATION set",
            file=sys.stderr,
        )
        return 64
    written = [scan(Path(source), Path(destination))]
    extras = Path(os.environ.get("BUILDKIT_SCAN_SOURCE_EXTRAS") or "/nonexistent")
    if extras.is_dir():
        written += [scan(extra, Path(destination)) for extra in sorted(extras.iterdir())]
    for path in written:
        count = len(json.loads(path.read_text())["predicate"]["packages"])
        print(f"{TOOL}: {path.name}: {count} packages", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
