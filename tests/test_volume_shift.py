"""benchmarks/volume_shift.py: test cases grouped by tumour volume over the labelled ones."""

from __future__ import annotations

import numpy as np
import pytest
from _nifti import write_nifti
from test_report_gain import LABELLED, _dual, write_run


@pytest.fixture()
def module(benchmark_module):
    return benchmark_module("volume_shift")


def test_tumour_volumes_in_ml(module, tmp_path):
    seg = np.zeros((10, 10, 10), np.uint8)
    seg[:5, :4, :2] = 2  # 40 voxels of 2 x 2 x 2.5 mm = 0.4 ml
    write_nifti(tmp_path / "c1" / "c1_seg.nii.gz", seg, np.diag([2.0, 2.0, 2.5, 1.0]))
    assert module.tumour_volumes(tmp_path) == {"c1": pytest.approx(0.4)}


def test_groups_by_ratio_to_the_labelled_mean(module, tmp_path):
    # fold 0 labels c08, c09 (mean 10 ml); its test cases c00..c03 hold 5, 10, 20, 40 ml
    volumes = {c: 10.0 for c in LABELLED}
    volumes.update(c00=5.0, c02=20.0, c03=40.0)
    run = write_run(tmp_path, "ours_s1_f0", "ours", 0, _dual([60.0, 70.0, 80.0, 90.0]))
    rows = module.shift_rows([run], volumes)
    assert list(rows) == ["ours"]
    assert [(r, d) for r, d, _ in rows["ours"]] == [(0.5, 60.0), (1.0, 70.0), (2.0, 80.0),
                                                    (4.0, 90.0)]
    text = module.table(rows)
    ours = next(line for line in text.splitlines() if line.startswith("| ours"))
    assert "| 60.0 (n=1) | 70.0 (n=1) | 85.0 (n=2) |" in ours
