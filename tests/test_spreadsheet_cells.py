"""Cells a spreadsheet would run as formulas are written as text, and our readers get the original back."""

import csv

import pandas as pd
import pytest

from keeptrash.io import spreadsheet_safe, spreadsheet_text, write_csv

FORMULA_STARTS = ["=HYPERLINK(\"http://x\")", "+1+2", "-2+3", "@SUM(A1)", "\tcmd", "\rcmd"]


@pytest.mark.parametrize("cell", FORMULA_STARTS)
def test_a_formula_like_cell_is_written_as_text(cell):
    assert spreadsheet_safe(cell) == "'" + cell


@pytest.mark.parametrize("cell", ["photo.jpg", "keep", "", "'quoted", "a=b", "2024/-x.jpg"])
def test_an_ordinary_cell_is_written_as_it_is(cell):
    assert spreadsheet_safe(cell) == cell


@pytest.mark.parametrize("cell", FORMULA_STARTS + ["'=x", "''+y", "'x", "x", "", "'", "''"])
def test_reading_back_gives_the_original_cell(cell):
    assert spreadsheet_text(spreadsheet_safe(cell)) == cell


def test_write_csv_neutralises_text_cells_and_leaves_numbers_alone(tmp_path):
    """An analysis table: a text column (a tag, say) and numbers, negative ones included."""
    table = pd.DataFrame({"category": [*FORMULA_STARTS, "portrait"], "change": [-0.25, -1.0, 2.0, -3.5, 0.0, 1.0, -7.0]})
    write_csv(tmp_path / "table.csv", table)
    with (tmp_path / "table.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["category"] for row in rows] == ["'" + cell for cell in FORMULA_STARTS] + ["portrait"]
    assert [spreadsheet_text(row["category"]) for row in rows] == list(table["category"])
    assert [row["change"] for row in rows] == ["-0.25", "-1.0", "2.0", "-3.5", "0.0", "1.0", "-7.0"]
