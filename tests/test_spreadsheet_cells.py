"""Cells a spreadsheet would run as formulas are written as text, and our readers get the original back."""

import pytest

from keeptrash.io import spreadsheet_safe, spreadsheet_text

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
