"""The README's generated blocks: the settings tables, rendered from the settings declarations.

    python -m tests.readme          # rewrite them in README.md (scripts/readme does this)

A block sits between `<!-- BEGIN generated: NAME -->` and `<!-- END generated: NAME -->`.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from courier.demo.settings import DemoSettings
from courier.settings import Settings, markdown_table

README = Path(__file__).resolve().parent.parent / "README.md"
RENDERERS = {
    "settings": lambda: markdown_table(Settings),
    "demo settings": lambda: markdown_table(DemoSettings),
}
_BLOCK = re.compile(
    r"(<!-- BEGIN generated: (?P<name>[a-z ]+) -->\n)"
    r"(?P<body>.*?)"
    r"(<!-- END generated: (?P=name) -->)",
    re.DOTALL,
)


def generated_blocks(text: str) -> dict[str, tuple[str, str]]:
    """Each block of `text`: (what it holds, what it should hold). Every renderer has a block."""
    blocks = {m["name"]: (m["body"], RENDERERS[m["name"]]()) for m in _BLOCK.finditer(text)}
    missing = set(RENDERERS) - set(blocks)
    if missing:
        raise ValueError(f"README.md has no generated block for {sorted(missing)}")
    return blocks


def render(text: str) -> str:
    return _BLOCK.sub(lambda m: m[1] + RENDERERS[m["name"]]() + m[4], text)


def main() -> int:
    text = README.read_text(encoding="utf-8")
    generated_blocks(text)
    README.write_text(render(text), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
