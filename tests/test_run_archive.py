"""The benchmarks' archive of finished protocol runs (``benchmarks/run_archive.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_report_gain import _dual, write_run

from duetseg.reporting.collect import collect_runs


@pytest.fixture()
def archive(tmp_path, monkeypatch, benchmark_module):
    """The module with its runs/ and results/ folders moved under ``tmp_path``."""
    module = benchmark_module("run_archive")
    monkeypatch.setattr(module, "RUNS", tmp_path / "runs")
    monkeypatch.setattr(module, "ARCHIVE", tmp_path / "results")
    return module


def _finished_run(tmp_path: Path) -> Path:
    run = write_run(tmp_path / "runs" / "cv" / "K2", "ours_f0", "ours", 0,
                    _dual([80.0, 70.0, 90.0, 60.0]))
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "last.pt").write_bytes(b"weights")
    return run


def test_archive_keeps_the_report_files_and_no_weights(archive, tmp_path):
    run = _finished_run(tmp_path)
    copy = archive.archive_run(run)
    assert copy == tmp_path / "results" / "cv" / "K2" / "ours_f0"
    for name in ("config.yaml", "splits.json", "eval/test/metrics.csv",
                 "eval/test/summary.json"):
        assert (copy / name).read_bytes() == (run / name).read_bytes()
    assert not (copy / "checkpoints").exists()
    assert not list(copy.parent.glob(".*tmp*"))


def test_a_run_lost_with_the_checkout_is_read_from_the_archive(archive, tmp_path):
    run = _finished_run(tmp_path)
    assert archive.finished_run(run) == run  # archived on the way
    original = collect_runs([run])[0]
    for path in sorted(run.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    found = archive.finished_run(run)
    assert found == archive.archive_path(run)
    record = collect_runs([found])[0]
    assert record.rows == original.rows
    assert (record.name, record.labeled, record.fold) == (original.name, 2, 0)


def test_unfinished_runs_are_neither_archived_nor_found(archive, tmp_path):
    run = tmp_path / "runs" / "cv" / "K2" / "ours_f1"
    (run / "checkpoints").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no test evaluation"):
        archive.archive_run(run)
    assert archive.finished_run(run) is None
    assert not (tmp_path / "results").exists()
