"""Packaging metadata: CITATION.cff parses and cites the software and the paper, LICENSE."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from duetseg import __version__

ROOT = Path(__file__).resolve().parents[1]


def test_citation_cff_has_the_required_keys_and_cites_the_paper():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    for key in ("cff-version", "message", "title", "authors", "type", "version", "license"):
        assert cff.get(key), key
    assert cff["type"] == "software"
    assert str(cff["version"]) == __version__
    assert all(a.get("name") or a.get("family-names") for a in cff["authors"])
    (paper,) = cff["references"]
    for key in ("type", "title", "authors", "year"):
        assert paper.get(key), key
    assert paper["title"].startswith("Semi-Supervised Multi-Modal Medical Image Segmentation")
    assert paper["authors"][0]["family-names"] == "Meng"


def test_license_is_mit_and_matches_pyproject():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License") and "the duetseg authors" in text
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT"
    assert project["version"] == __version__
