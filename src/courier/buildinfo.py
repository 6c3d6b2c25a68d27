"""Version, commit and build date of this build.

The image build renders `VERSION.tmpl` into `build_info.json` beside this module. Outside an
image (a checkout, a wheel) the version comes from the package metadata and the rest is unknown.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from functools import cache
from importlib import resources

UNKNOWN = "unknown"


@dataclass(frozen=True)
class BuildInfo:
    version: str
    commit: str
    build_date: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


@cache
def build_info() -> BuildInfo:
    """Read once: the rendered file when present, else the installed package's version."""
    try:
        raw = (resources.files("courier") / "build_info.json").read_text(encoding="utf-8")
        data = json.loads(raw)
        return BuildInfo(
            version=str(data.get("version") or UNKNOWN),
            commit=str(data.get("commit") or UNKNOWN),
            build_date=str(data.get("build_date") or UNKNOWN),
        )
    except (FileNotFoundError, ValueError, AttributeError):
        pass
    from importlib import metadata  # only outside an image: it costs tens of ms to import

    try:
        version = metadata.version("courier")
    except metadata.PackageNotFoundError:
        version = UNKNOWN
    return BuildInfo(version=version, commit=UNKNOWN, build_date=UNKNOWN)
