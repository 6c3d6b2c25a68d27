"""The README's reference tables against the code: the settings tables (rendered from the
declarations), the exit codes of `courier.exitcodes`, and the routes the app registers."""

from __future__ import annotations

import re

from falcon import testing

from courier import exitcodes
from tests.readme import README, generated_blocks

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


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


def test_readme_settings_tables_are_rendered_from_the_declarations() -> None:
    text = README.read_text(encoding="utf-8")
    for name, (current, rendered) in generated_blocks(text).items():
        assert current == rendered, f"the README's {name} table is stale: run scripts/readme"


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
