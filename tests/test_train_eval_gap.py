"""benchmarks/train_eval_gap.py and false_positive_sites.py: the over-segmentation probes."""

from __future__ import annotations

import numpy as np
import pytest
import torch


@pytest.fixture()
def module(benchmark_module):
    return benchmark_module("train_eval_gap")


def test_case_scores_dice_and_volume_ratio(module):
    truth = np.zeros((4, 4, 1), bool)
    truth[:2] = True  # 8 voxels
    pred = np.zeros_like(truth)
    pred[1:] = True  # 12 voxels, 4 shared
    dice, volume = module.case_scores(pred, truth)
    assert dice == pytest.approx(100 * 8 / 20) and volume == pytest.approx(1.5)
    assert module.case_scores(np.zeros_like(truth), np.zeros_like(truth)) == (100.0, 0.0)


def test_reestimate_gives_every_batch_the_same_weight(module):
    net = torch.nn.Sequential(torch.nn.BatchNorm3d(2), torch.nn.Dropout3d(0.5))
    net[0].running_mean.fill_(7.0)
    batches = [torch.full((2, 2, 2, 2, 2), v) + torch.randn(2, 2, 2, 2, 2) * 0.01
               for v in (1.0, 2.0, 6.0)]
    assert module.reestimate_norm_statistics(net, net, batches) == 1
    assert net[0].running_mean.tolist() == pytest.approx([3.0, 3.0], abs=0.01)
    assert not net.training and not net[1].training


@pytest.fixture()
def sites_module(benchmark_module):
    return benchmark_module("false_positive_sites")


def test_false_positives_split_by_distance_to_the_truth(sites_module):
    truth = np.zeros((1, 1, 10), bool)
    truth[..., 3:5] = True
    pred = np.zeros_like(truth)
    pred[..., [2, 3, 6, 9]] = True  # 3 TP; 2 is 1 voxel out, 6 is 2 out, 9 is 5 out
    sites = sites_module.false_positive_sites(pred, truth, rim=2)
    assert np.flatnonzero(sites["rim"]).tolist() == [2, 6]
    assert np.flatnonzero(sites["remote"]).tolist() == [9]
    empty = sites_module.false_positive_sites(pred, np.zeros_like(truth), rim=2)
    assert not empty["rim"].any() and empty["remote"].sum() == 4
