"""The results page: rebuilt from the committed records, deterministic and up to date."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from duetseg.analysis.accuracy import CANDIDATES, REFERENCES
from duetseg.analysis.confirmation import CONFIRM_BEGIN, CONFIRM_END, readme_with_confirmation
from duetseg.analysis.page import PAGE_COMMAND, build_page
from duetseg.analysis.readme_table import (
    BEGIN,
    END,
    README_ROWS,
    readme_with_table,
    replace_block,
)
from duetseg.analysis.records import load_records, render_record

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


@pytest.fixture(scope="module")
def page() -> str:
    return build_page(RESULTS)


def test_the_page_is_deterministic():
    # fewer resamples keep it quick; the committed page (full resamples) is checked below
    assert build_page(RESULTS, n_resamples=200) == build_page(RESULTS, n_resamples=200)


def test_the_committed_page_is_what_the_records_give(page):
    assert (REPO / "BENCHMARKS.md").read_text() == page, (
        f"BENCHMARKS.md is stale: run {PAGE_COMMAND}")


def test_the_readme_table_is_what_the_records_give():
    readme = (REPO / "README.md").read_text()
    assert readme_with_table(RESULTS, readme) == readme, (
        f"the README's accuracy table is stale: run {PAGE_COMMAND}")
    table = readme.split(BEGIN)[1].split(END)[0]
    assert "| ours (default) |" in table and "`mt_t2`" in table


def test_the_readme_confirmation_table_is_what_the_records_give():
    readme = (REPO / "README.md").read_text()
    assert readme_with_confirmation(RESULTS, readme) == readme, (
        f"the README's confirmation table is stale: run {PAGE_COMMAND}")
    table = readme.split(CONFIRM_BEGIN)[1].split(CONFIRM_END)[0]
    assert "| Tumour core | ours (default) |" in table


def test_the_readme_block_is_replaced_between_its_markers():
    text = f"intro\n{BEGIN}\nold\n{END}\noutro\n"
    assert replace_block(text, "| new |\n") == f"intro\n{BEGIN}\n| new |\n{END}\noutro\n"
    with pytest.raises(ValueError, match="markers"):
        replace_block("no markers", "x")


def test_one_section_per_question_in_order(page):
    sections = [line for line in page.splitlines() if line.startswith("## ")]
    assert sections == ["## Accuracy by method and labelled count",
                        "## Confirmation on fresh seeds",
                        "## When a second modality pays",
                        "## Ablation of the components (paper Table 2)",
                        "## Accuracy with a modality missing at prediction",
                        "## Post-processing: the largest connected component",
                        "## Speed on CPU", "## Speed on GPU", "## Metrics against medpy"]
    assert PAGE_COMMAND in page.split("## ")[0]


def test_every_record_says_where_its_figures_come_from():
    for path in RESULTS.glob("*/*.json"):
        record = json.loads(path.read_text())
        assert {"command", "machine", "commit", "date"} <= set(record), path


def test_a_record_renders_with_its_command(tmp_path):
    record = {"command": "python benchmarks/x.py", "machine": "m", "commit": "abc",
              "date": "2026-01-01 00:00 UTC", "title": "X",
              "tables": [{"caption": "", "columns": ["a", "b"], "rows": [["1", "x|y"]]}],
              "note": "A note."}
    (tmp_path / "q").mkdir()
    (tmp_path / "q" / "x.json").write_text(json.dumps(record))
    text = render_record(load_records(tmp_path, "q")["x"])
    assert text.startswith("### X\n\n| a | b |\n|---|---|\n| 1 | x\\|y |\n\nA note.")
    assert "`python benchmarks/x.py`" in text and "2026-01-01 00:00 UTC" in text


def test_every_candidate_and_reference_has_a_readme_row_saying_what_it_is():
    assert set(CANDIDATES) | set(REFERENCES) <= set(README_ROWS)
    assert not any("see BENCHMARKS" in text for text in README_ROWS.values())
