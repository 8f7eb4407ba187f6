"""benchmarks/pseudo_label_sites.py: pseudo-labels of a crop and where their tumour lies."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture()
def module(benchmark_module):
    return benchmark_module("pseudo_label_sites")


def test_argmax_and_volume_keeping_pseudo_labels(module):
    fg = np.zeros((4, 4, 4))
    fg[0, 0, :] = [0.9, 0.8, 0.45, 0.4]  # argmax: 2 voxels; expected: 2.9
    fg[1, 1, 1] = 0.35  # no tie with the 0.45 above
    prob = np.stack([1.0 - fg, fg]).astype(np.float32)
    labels = module.pseudo_labels(prob)
    assert labels["argmax"].sum() == 2 and labels["argmax"][0, 0, :2].all()
    assert labels["soft"].sum() == 3  # round(2.9): the 3 largest
    assert labels["soft"][0, 0, :3].all()


def test_site_counts_split_by_distance(module):
    mask = np.array([True, True, True, True, False])
    distance = np.array([0.0, 0.0, 1.5, 3.0, 0.0])
    assert module.site_counts(mask, distance, rim=2.0).tolist() == [2.0, 1.0, 1.0]
