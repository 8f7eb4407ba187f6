"""Render the HTML report in headless Chromium and check the rendered DOM and a screenshot.

Needs Debian's ``chromium`` at /usr/bin/chromium
(``apt-get update && apt-get install -y chromium``); without it the test fails.
"""

from __future__ import annotations

import subprocess
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest
from test_reporting import make_fake_runs

from duetseg.reporting.report import make_report

pytestmark = pytest.mark.chromium

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


class _DomScan(HTMLParser):
    """Collect the cell texts of table#table1 rows and the attributes of <img> elements."""

    def __init__(self) -> None:
        super().__init__()
        self.in_table1 = False
        self.depth = 0
        self.rows: list[list[str]] = []
        self.cell: list[str] | None = None
        self.images: list[dict[str, str]] = []
        self.table_ids: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = {k: v or "" for k, v in attrs}
        if tag == "table":
            self.table_ids.append(attrs.get("id", ""))
            if attrs.get("id") == "table1":
                self.in_table1 = True
        if tag == "img":
            self.images.append(attrs)
        if self.in_table1 and tag == "tr":
            self.rows.append([])
        if self.in_table1 and tag in ("td", "th"):
            self.cell = []

    def handle_endtag(self, tag):
        if tag == "table":
            self.in_table1 = False
        if self.in_table1 and tag in ("td", "th") and self.cell is not None:
            self.rows[-1].append("".join(self.cell).strip())
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    if not CHROMIUM.exists():
        pytest.fail("Chromium not found at /usr/bin/chromium: install Debian's package with "
                    "'apt-get update && apt-get install -y chromium'")
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    cmd = [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=90, check=False)


@pytest.fixture()
def report(tmp_path):
    fake = make_fake_runs(tmp_path / "runs")
    return make_report(fake["dirs"], tmp_path / "report")


def test_rendered_dom_has_tables_and_images(report, tmp_path):
    proc = _chromium(tmp_path, "--dump-dom", report.as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    scan = _DomScan()
    scan.feed(proc.stdout)
    assert {"table1", "table2", "stats"} <= set(scan.table_ids)
    header, *body = scan.rows
    assert header[0] == "Method" and "5% DSC (%)" in header
    assert [r[0] for r in body] == ["mean_teacher", "ours"]
    assert all("±" in r[1] for r in body)
    data_imgs = [i for i in scan.images if i.get("src", "").startswith("data:image/png;base64,")]
    assert len(data_imgs) == 2 and len(data_imgs) == len(scan.images)
    assert all(i.get("alt") for i in data_imgs)


def test_screenshot_is_non_trivial(report, tmp_path):
    shot = tmp_path / "shot.png"
    proc = _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,1600",
                     report.as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert shot.is_file() and shot.stat().st_size > 20_000
    pixels = mpimg.imread(shot)
    assert pixels.shape[:2] == (1600, 1280)
    assert float(np.std(pixels[..., :3])) > 0.05  # not a blank page
