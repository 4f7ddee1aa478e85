"""README.md's parameter table is the one the schema generates, so names, types, defaults and ranges cannot drift."""
from __future__ import annotations

from pathlib import Path

from mvinverse_ros.params import markdown_table, parameter_specs

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_holds_the_generated_parameter_table():
    table = markdown_table()
    assert table in README.read_text(), ("README.md's parameter table differs from the schema's: "
                                         "paste the output of `python -m mvinverse_ros.params`")


def test_generated_table_has_one_row_per_parameter_with_its_range():
    rows = [line for line in markdown_table().splitlines()[2:]]
    assert [row.split("|")[1].strip(" `") for row in rows] == [s.name for s in parameter_specs()]
    size_row = next(row for row in rows if row.startswith("| `window.size` |"))
    assert "| integer | `4` | 2..16 |" in size_row
