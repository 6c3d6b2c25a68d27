"""The README's reference tables against the code: the configuration variables load_settings reads,
the exit codes of `courier.exitcodes`, and the routes the app registers."""

from __future__ import annotations

import re
from pathlib import Path

from falcon import testing

from courier import exitcodes
from tests.unit.conftest import COURIER_VARIABLES

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
CONFIG_SOURCE = ROOT / "src" / "courier" / "config.py"
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
# A variable read in load_settings: `reader.integer("PORT", ...)`, `env.get("BROKER_URL", ...)`,
# `env["NAME"]`.
READ = re.compile(r"""(?:\breader\.\w+\(|\benv\.get\(|\benv\[)\s*["']([A-Z][A-Z0-9_]*)["']""")


def section(heading: str) -> str:
    """The README text under `heading` (a whole heading line), up to the next heading of the
    same or a higher level."""
    text = README.read_text(encoding="utf-8")
    level = len(heading) - len(heading.lstrip("#"))
    lines = text.splitlines()
    assert lines.count(heading) == 1, f"README has {lines.count(heading)} {heading!r} headings"
    start = lines.index(heading) + 1
    end = len(lines)
    for number in range(start, len(lines)):
        match = re.match(r"^(#+) ", lines[number])
        if match and len(match[1]) <= level:
            end = number
            break
    return "\n".join(lines[start:end])


def cells(row: str) -> list[str]:
    """The cells of a markdown table row (`\\|` is a literal bar inside a cell)."""
    parts = re.split(r"(?<!\\)\|", row.strip())
    assert parts[0] == "", f"not a table row: {row!r}"
    assert parts[-1] == "", f"not a table row: {row!r}"
    return [cell.strip() for cell in parts[1:-1]]


def first_column(text: str, header: str) -> list[str]:
    """The first cells of the body rows of the one table in `text` whose first header is
    `header`."""
    lines = text.splitlines()
    starts = [
        n for n, line in enumerate(lines) if line.startswith("|") and cells(line)[0] == header
    ]
    assert len(starts) == 1, f"{len(starts)} tables headed {header!r}"
    start = starts[0]
    assert re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", lines[start + 1]), lines[start + 1]
    column = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        column.append(cells(line)[0])
    assert column, f"the table headed {header!r} is empty"
    return column


def code_span(cell: str) -> str:
    match = re.fullmatch(r"`([^`]+)`", cell)
    assert match, f"not a single code span: {cell!r}"
    return match[1]


def variables_read_by_load_settings() -> set[str]:
    """Names load_settings (and the helpers it calls) read, from config.py's source text."""
    source = CONFIG_SOURCE.read_text(encoding="utf-8")
    return set(READ.findall(source))


def test_readme_configuration_table_lists_exactly_the_variables_courier_reads() -> None:
    documented = [code_span(cell) for cell in first_column(section("## Configuration"), "Variable")]
    assert len(documented) == len(set(documented)), f"listed twice: {sorted(documented)}"
    read = variables_read_by_load_settings()
    assert len(read) >= 10, f"the pattern found too few reads in config.py: {sorted(read)}"
    print(f"\nREADME documents {len(documented)} variables; config.py reads {len(read)}")
    assert set(documented) == read, (
        f"undocumented: {sorted(read - set(documented))}; "
        f"documented but not read: {sorted(set(documented) - read)}"
    )


def test_the_unit_fixtures_clear_every_variable_courier_reads() -> None:
    """COURIER_VARIABLES (which the `data_dir` fixture removes from the environment) is complete."""
    read = variables_read_by_load_settings()
    assert read == COURIER_VARIABLES, (
        f"missing: {sorted(read - COURIER_VARIABLES)}; extra: {sorted(COURIER_VARIABLES - read)}"
    )


def test_readme_exit_code_table_matches_courier_exitcodes() -> None:
    constants = {
        name: value
        for name, value in vars(exitcodes).items()
        if name.isupper() and isinstance(value, int)
    }
    assert constants, "no exit code constants found"
    documented = [int(cell) for cell in first_column(section("### Exit codes"), "Code")]
    assert len(documented) == len(set(documented)), f"listed twice: {documented}"
    print(f"\nexit codes: module {constants}; README {documented}")
    assert set(documented) == set(constants.values()), (
        f"undocumented: {sorted(set(constants.values()) - set(documented))}; "
        f"documented but not defined: {sorted(set(documented) - set(constants.values()))}"
    )


def normalised(path: str) -> str:
    """A path with every `{parameter}` renamed `{}` (the README writes `{id}` for `{job_id}`)."""
    return re.sub(r"\{[^}]*\}", "{}", path)


def test_readme_endpoint_table_lists_exactly_the_routes_of_the_app(
    client: testing.TestClient,
) -> None:
    result = client.simulate_get("/openapi.json")
    assert result.status_code == 200, result.text
    paths: dict[str, dict[str, object]] = result.json["paths"]
    registered = {
        (method.upper(), normalised(path))
        for path, item in paths.items()
        for method in item
        if method in HTTP_METHODS
    }
    assert {path for _, path in registered} == {normalised(path) for path in paths}
    documented_cells = [
        code_span(cell) for cell in first_column(section("## API"), "Method and path")
    ]
    documented = []
    for cell in documented_cells:
        method, _, path = cell.partition(" ")
        assert method.lower() in HTTP_METHODS, cell
        assert path.startswith("/"), cell
        documented.append((method, normalised(path)))
    assert len(documented) == len(set(documented)), f"listed twice: {documented}"
    print(f"\n{len(registered)} operations registered; README lists {len(documented)}")
    assert set(documented) == registered, (
        f"undocumented: {sorted(registered - set(documented))}; "
        f"documented but not registered: {sorted(set(documented) - registered)}"
    )
