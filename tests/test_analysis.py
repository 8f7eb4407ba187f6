"""duetseg.analysis: the archive of evaluated runs and the missing-modality tables."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_report_gain import _dual, write_run

from duetseg.analysis import missing
from duetseg.analysis.archive import archive_path, archive_run, finished_run
from duetseg.analysis.missing import paired_differences, pool_missing, recorded_missing_dice
from duetseg.reporting.collect import collect_runs
from duetseg.run.layout import RunDir


def _finished_run(tmp_path: Path) -> Path:
    run = write_run(tmp_path / "runs" / "cv" / "K2", "ours_f0", "ours", 0,
                    _dual([80.0, 70.0, 90.0, 60.0]))
    RunDir(run).checkpoint_dir.mkdir()
    RunDir(run).last_checkpoint.write_bytes(b"weights")
    return run


def test_archive_keeps_the_report_files_and_no_weights(tmp_path):
    run = _finished_run(tmp_path)
    dest = archive_path(run, tmp_path / "runs", tmp_path / "results")
    assert dest == tmp_path / "results" / "cv" / "K2" / "ours_f0"
    assert archive_run(run, dest) == dest
    for name in ("config.yaml", "splits.json", "eval/test/metrics.csv",
                 "eval/test/summary.json"):
        assert (dest / name).read_bytes() == (run / name).read_bytes()
    assert not (dest / "checkpoints").exists()
    assert not list(dest.parent.glob(".*tmp*"))


def test_a_run_lost_with_the_checkout_is_read_from_the_archive(tmp_path):
    run = _finished_run(tmp_path)
    roots = (tmp_path / "runs", tmp_path / "results")
    assert finished_run(run, *roots) == run  # archived on the way
    original = collect_runs([run])[0]
    for path in sorted(run.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    found = finished_run(run, *roots)
    assert found == archive_path(run, *roots)
    record = collect_runs([found])[0]
    assert record.rows == original.rows
    assert (record.name, record.labeled, record.fold) == (original.name, 2, 0)


def test_unfinished_runs_are_neither_archived_nor_found(tmp_path):
    run = tmp_path / "runs" / "cv" / "K2" / "ours_f1"
    (run / "checkpoints").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no test evaluation"):
        archive_run(run, tmp_path / "results" / "x")
    assert finished_run(run, tmp_path / "runs", tmp_path / "results") is None
    assert not (tmp_path / "results").exists()


def test_paired_differences_compare_like_inputs():
    both, t1, t2 = "t1ce+t2", "t1ce", "t2"
    pooled = pool_missing([
        ("ours", 0, {both: {"a": 80.0, "b": 70.0}, t1: {"a": 40.0, "b": 30.0},
                     t2: {"a": 75.0, "b": 65.0}}),
        ("ours_md", 0, {both: {"a": 78.0, "b": 70.0}, t1: {"a": 60.0, "b": 50.0},
                        t2: {"a": 76.0, "b": 66.0}}),
        ("mt_t1ce", 0, {t1: {"a": 62.0, "b": 54.0}}),
        ("mt_t1ce", 1, {t1: {"c": 1.0}}),  # another seed: not a case of the others
        ("mt_t2", 0, {t2: {"a": 70.0, "b": 70.0}}),
    ])
    assert set(pooled["mt_t1ce"][t1]) == {"s0:a", "s0:b", "s1:c"}
    diffs = {(d.name, d.reference, d.inputs): d for d in paired_differences(pooled, 200)}
    assert set(diffs) == {("ours", "mt_t1ce", t1), ("ours", "mt_t2", t2),
                          ("ours_md", "mt_t1ce", t1), ("ours_md", "mt_t2", t2),
                          ("ours_md", "ours", both), ("ours_md", "ours", t1),
                          ("ours_md", "ours", t2)}
    d = diffs[("ours_md", "mt_t1ce", t1)]
    assert (d.mean, d.low, d.high, d.n) == (-3.0, -4.0, -2.0, 2)
    d = diffs[("ours_md", "ours", t1)]
    assert (d.mean, d.low, d.high, d.n) == (20.0, 20.0, 20.0, 2)


def test_recorded_dice_keeps_and_rereads_per_case_values(tmp_path, monkeypatch):
    run_dir, archived = tmp_path / "runs" / "ours_md_f0", tmp_path / "archive" / "ours_md_f0"
    archived.mkdir(parents=True)
    computed = {"t1ce+t2": {"case_a": 71.5}, "t1ce": {"case_a": 30.25}}
    monkeypatch.setattr(missing, "missing_input_dice", lambda r: computed)
    assert recorded_missing_dice(run_dir, archived) is None  # no weights, no record
    RunDir(run_dir).checkpoint_dir.mkdir(parents=True)
    RunDir(run_dir).last_checkpoint.write_bytes(b"")
    assert recorded_missing_dice(run_dir, archived) == computed
    assert RunDir(archived).missing_inputs_file.is_file()
    RunDir(run_dir).last_checkpoint.unlink()  # a fresh checkout: weights gone
    monkeypatch.setattr(missing, "missing_input_dice",
                        lambda r: pytest.fail("needs no weights"))
    assert recorded_missing_dice(run_dir, archived) == computed
