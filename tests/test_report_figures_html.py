"""Report writers on a tiny fake run set: the PNG figures and the HTML pieces."""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.image as mpimg
import matplotlib.pyplot as plt
import numpy as np
import pytest
from test_reporting import TEST, make_fake_runs

from duetseg.reporting import figures
from duetseg.reporting.collect import collect_runs
from duetseg.reporting.html import image_html, render_report, stats_html, table_html
from duetseg.reporting.stats import REFERENCE_METHOD
from duetseg.reporting.tabular import Table


@pytest.fixture()
def runs(tmp_path):
    """The fake runs that saved predictions (ours and mean_teacher, two counts, two seeds)."""
    dirs = make_fake_runs(tmp_path / "runs")["dirs"]
    return collect_runs([d for d in dirs if not d.name.startswith("abl_")])


@pytest.fixture()
def saved(monkeypatch):
    """Record the panels and texts of every figure the writers save."""
    records: list[dict] = []
    original = figures._save

    def spy(fig: plt.Figure, path: Path, dpi: int = 100) -> Path:
        records.append({"titles": [ax.get_title() for ax in fig.axes],
                        "texts": [t.get_text() for t in fig.texts]})
        return original(fig, path, dpi)

    monkeypatch.setattr(figures, "_save", spy)
    return records


def _png(path: Path) -> np.ndarray:
    assert path.read_bytes()[:4] == b"\x89PNG"
    assert not list(path.parent.glob(".tmp-*"))
    image = mpimg.imread(path)
    assert image.size > 0 and np.ptp(image) > 0  # not a blank canvas
    return image


def test_plot_curves_writes_two_panels(runs, saved, tmp_path) -> None:
    path = figures.plot_curves(runs, tmp_path / "out" / "curves.png")
    assert path == tmp_path / "out" / "curves.png"
    image = _png(path)
    assert image.shape[1] == 1100  # figsize 11 in at 100 dpi
    assert abs(image.shape[0] - 100 * (4.2 + 0.18 * len(runs))) <= 1
    assert saved[0]["titles"] == ["training loss", "validation Dice (primary output)"]
    assert saved[0]["texts"] == []


def test_plot_curves_without_logs_says_so(runs, saved, tmp_path) -> None:
    for run in runs:
        (run.run_dir / "log.csv").unlink()
    _png(figures.plot_curves(runs, tmp_path / "curves.png"))
    assert saved[0]["texts"] == ["no log.csv found in the runs"]


def test_plot_qualitative_grid(runs, saved, tmp_path) -> None:
    shown = figures.qualitative_runs(runs)
    assert [r.name for r in shown] == ["mean_teacher", REFERENCE_METHOD]  # reference last
    cases = figures.common_cases(shown, max_cases=2)
    assert cases == TEST[:2]
    image = _png(figures.plot_qualitative(shown, tmp_path / "q.png", max_cases=2))
    ncol = len(shown) + 2
    assert image.shape[:2] == (270 * len(cases), 260 * ncol)
    titles = saved[0]["titles"]
    assert len(titles) == len(cases) * ncol
    assert titles[0] == f"{TEST[0]}\nt1ce" and titles[1] == "ground truth"
    assert titles[2].startswith("mean_teacher\nDice ") and titles[3].startswith("ours\nDice ")


def test_plot_qualitative_without_cases_writes_nothing(runs, tmp_path) -> None:
    assert figures.plot_qualitative([], tmp_path / "q.png") is None
    assert figures.plot_qualitative(runs[:2], tmp_path / "q.png", cases=[]) is None
    assert not (tmp_path / "q.png").exists()


def _parse(fragment: str) -> ET.Element:
    return ET.fromstring(f"<div>{fragment}</div>")


TABLE = Table(title='Dice <"mean"> & spread', headers=["Method", "Dice <%>"],
              rows=[["mean_teacher", "70.1 ± 2"], ["ours", "80.5 ± 1"],
                    ["<script>alert(1)</script>", "a & b"]],
              notes=["p < 0.05 & 'paired'"])


def test_table_html_escapes_every_cell() -> None:
    page = table_html(TABLE, 'table"1')
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "a &amp; b" in page
    root = _parse(page)
    table = root.find("table")
    assert table.get("id") == 'table"1'
    assert table.find("caption").text == TABLE.title
    assert [th.text for th in table.iter("th")] == TABLE.headers
    assert [[td.text for td in tr] for tr in table.find("tbody")] == TABLE.rows
    assert [li.text for li in root.find("ul")] == TABLE.notes


def test_table_html_highlights_the_reference_row() -> None:
    def highlighted(page: str) -> list[str]:
        rows = _parse(page).find("table/tbody")
        return [tr[0].text for tr in rows if tr.get("class") == "ours"]

    assert highlighted(table_html(TABLE, "t")) == [REFERENCE_METHOD]
    assert highlighted(table_html(TABLE, "t", "mean_teacher")) == ["mean_teacher"]
    assert highlighted(table_html(TABLE, "t", TABLE.rows[2][0])) == [TABLE.rows[2][0]]
    assert highlighted(table_html(TABLE, "t", None)) == []


def _attributes(tag: str) -> dict[str, str | None]:
    """Attributes (unescaped) of the first HTML start tag in ``tag``."""
    found: dict[str, str | None] = {}

    class Parser(HTMLParser):
        def handle_starttag(self, name: str, attrs: list[tuple[str, str | None]]) -> None:
            if not found:
                found.update(attrs)

    Parser().feed(tag)
    return found


def test_image_and_page_are_self_contained(tmp_path) -> None:
    png = tmp_path / "x.png"
    plt.imsave(png, np.eye(4))
    tag = image_html(png, 'a "quoted" <alt>')
    attrs = _attributes(tag)
    assert attrs["alt"] == 'a "quoted" <alt>'
    prefix = "data:image/png;base64,"
    assert attrs["src"].startswith(prefix)
    assert base64.b64decode(attrs["src"][len(prefix):]) == png.read_bytes()
    assert "No configuration to compare with &lt;b&gt;" in stats_html({}, {}, "<b>")
    page = render_report("Runs <&>", TABLE, None, stats_html({}, {}), png, None,
                         ["run <1>"], qualitative_note="no <cases>")
    assert "<title>Runs &lt;&amp;&gt;</title>" in page and "<li>run &lt;1&gt;</li>" in page
    assert page.count("<img ") == 1 and "no &lt;cases&gt;" in page
    assert '<tr class="ours"><td>ours</td>' in page and "No ablation runs" in page
    assert "http://" not in page and "https://" not in page
