"""benchmarks/pseudo_volume.py: crop volumes (argmax, expected, low-probability tail)."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture()
def module(benchmark_module):
    return benchmark_module("pseudo_volume")


def test_crop_volumes_split_the_expected_volume(module):
    fg = np.array([0.9, 0.8, 0.3, 0.1, 0.0, 0.0]).reshape(1, 1, 6)
    probs = {"branch_a": np.stack([1.0 - fg, fg])}
    label = np.array([1, 1, 1, 0, 0, 0]).reshape(1, 1, 6)
    true, argmax, soft, tail = module.crop_volumes(probs, label)["branch_a"]
    assert (true, argmax) == (3.0, 2.0)
    assert soft == pytest.approx(2.1) and tail == pytest.approx(0.4)
    assert module.volume_ratios(np.array([true, argmax, soft, tail])) == pytest.approx(
        (2 / 3, 0.7, 0.4 / 3))


def test_three_classes_count_every_foreground_class(module):
    p = np.zeros((3, 1, 1, 2))
    p[:, 0, 0, 0] = [0.2, 0.4, 0.4]  # tumour 0.8 though no class has half
    p[:, 0, 0, 1] = [0.9, 0.05, 0.05]
    vols = module.crop_volumes({"x": p}, np.array([2, 0]).reshape(1, 1, 2))["x"]
    assert vols == pytest.approx([1.0, 1.0, 0.9, 0.1])


def test_trace_means_per_span_of_iterations(module):
    rows = [{"iteration": str(it), "pseudo_fg": str(it / 100)} for it in range(9, 200, 10)]
    rows.append({"iteration": "199", "pseudo_fg": ""})  # a row without the column counts not
    means = module.trace_means(rows, parts=2)
    assert means == pytest.approx([np.mean([0.09, 0.19, 0.29, 0.39, 0.49, 0.59, 0.69, 0.79,
                                            0.89, 0.99]), np.mean(np.arange(109, 200, 10) / 100)])
    assert module.trace_means([{"iteration": "9", "loss": "1"}]) == []
