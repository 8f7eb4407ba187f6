"""benchmarks/missing_modality.py: the paired rows of the missing-modality table."""

from __future__ import annotations

import pytest


@pytest.fixture()
def module(benchmark_module):
    return benchmark_module("missing_modality")


def test_paired_rows_compare_like_inputs(module):
    both, t1, t2 = "t1ce+t2", "t1ce", "t2"
    pooled = {
        "ours": {both: {"a": 80.0, "b": 70.0}, t1: {"a": 40.0, "b": 30.0},
                 t2: {"a": 75.0, "b": 65.0}},
        "ours_md": {both: {"a": 78.0, "b": 70.0}, t1: {"a": 60.0, "b": 50.0},
                    t2: {"a": 76.0, "b": 66.0}},
        "mt_t1ce": {t1: {"a": 62.0, "b": 54.0, "c": 1.0}},  # c: not a case of the others
        "mt_t2": {t2: {"a": 70.0, "b": 70.0}},
    }
    rows = module.paired_rows(pooled)
    cells = {tuple(c.strip() for c in r.strip("|").split("|")[:2]): r for r in rows}
    assert set(cells) == {("ours − mt_t1ce", t1), ("ours − mt_t2", t2),
                          ("ours_md − mt_t1ce", t1), ("ours_md − mt_t2", t2),
                          ("ours_md − ours", both), ("ours_md − ours", t1),
                          ("ours_md − ours", t2)}
    assert "| −3.00 [−4.00, −2.00] | 2 |" in cells[("ours_md − mt_t1ce", t1)].replace(
        "-", "−")
    assert "| −1.00 [−2.00, +0.00] | 2 |" in cells[("ours_md − ours", both)].replace("-", "−")
    assert "| +20.00 [+20.00, +20.00] | 2 |" in cells[("ours_md − ours", t1)]


def test_recorded_dice_keeps_and_rereads_per_case_values(module, tmp_path, monkeypatch):
    run_dir, archived = tmp_path / "runs" / "ours_md_f0", tmp_path / "archive" / "ours_md_f0"
    (archived / "eval").mkdir(parents=True)
    monkeypatch.setattr(module, "archive_path", lambda r: archived)
    computed = {"t1ce+t2": {"case_a": 71.5}, "t1ce": {"case_a": 30.25}}
    monkeypatch.setattr(module, "run_dice", lambda r: computed)
    assert module.recorded_dice(run_dir) is None  # no weights, no record
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "last.pt").write_bytes(b"")
    assert module.recorded_dice(run_dir) == computed
    assert (archived / "eval" / "missing_inputs.json").is_file()
    (run_dir / "checkpoints" / "last.pt").unlink()  # a fresh checkout: weights gone
    monkeypatch.setattr(module, "run_dice", lambda r: pytest.fail("needs no weights"))
    assert module.recorded_dice(run_dir) == computed
