"""The pseudo-label prior guard (``method.options.pseudo_prior``) and its labelled prior."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from duetseg.config import MethodConfig, ModelConfig, load_config
from duetseg.data.sampling import TwoStreamBatches
from duetseg.errors import ConfigError, InputError
from duetseg.methods import MethodContext, build_method
from duetseg.methods.prior_guard import PseudoLabelPrior
from duetseg.run.checkpoint import load_checkpoint
from duetseg.training import train

pytestmark = pytest.mark.usefixtures("one_thread")


def _logits(fg_margin: torch.Tensor) -> torch.Tensor:
    """(1, 2, V) logits whose foreground exceeds background by ``fg_margin`` per voxel."""
    return torch.stack([torch.zeros_like(fg_margin), fg_margin])[None]


def test_shift_adds_the_bias_to_detached_logits_and_flips_only_uncertain_voxels():
    prior = PseudoLabelPrior(2)
    prior.bias.copy_(torch.tensor([0.0, 1.0]))
    logits = _logits(torch.tensor([-3.0, -0.5, 0.5])).requires_grad_(True)
    (shifted,) = prior.shift([logits])
    assert not shifted.requires_grad
    assert shifted.argmax(1).tolist() == [[0, 1, 1]]


@pytest.mark.parametrize("pseudo_fg, direction", [(0.0, 1.0), (0.9, -1.0)])
def test_update_moves_the_bias_towards_the_target_volume(pseudo_fg, direction):
    prior = PseudoLabelPrior(2, rate=0.1, max_shift=0.5, momentum=0.5)
    prior.set_target(np.array([0.9, 0.1]))
    n_fg = int(pseudo_fg * 10)
    margins = torch.tensor([5.0] * n_fg + [-5.0] * (10 - n_fg))
    biases = []
    for _ in range(20):
        prior.update([_logits(margins)])
        biases.append(float(prior.bias[1]))
    assert float(prior.bias[0]) == 0.0
    assert direction * biases[0] > 0 and direction * biases[-1] >= direction * biases[0]
    assert abs(biases[-1]) == pytest.approx(0.5)  # bounded by max_shift
    assert int(prior.steps) == 20


def test_cap_only_brakes_large_volumes_and_never_adds_foreground():
    prior = PseudoLabelPrior(2, rate=0.1, momentum=0.5, cap_only=True)
    prior.set_target(np.array([0.9, 0.1]))
    for _ in range(5):
        prior.update([_logits(torch.tensor([-5.0] * 10))])  # no foreground at all
    assert float(prior.bias[1]) == 0.0
    for _ in range(5):
        prior.update([_logits(torch.tensor([5.0] * 10))])  # all foreground
    assert float(prior.bias[1]) < 0.0


def test_update_leaves_the_bias_alone_at_the_target_volume():
    prior = PseudoLabelPrior(2, rate=0.1)
    prior.set_target(np.array([0.8, 0.2]))
    margins = torch.tensor([5.0, 5.0] + [-5.0] * 8)
    for _ in range(5):
        prior.update([_logits(margins), _logits(margins)])
    assert float(prior.bias[1]) == pytest.approx(0.0, abs=1e-6)


def test_set_target_keeps_running_fractions_after_updates_and_rejects_bad_input():
    prior = PseudoLabelPrior(2)
    prior.set_target([0.5, 0.5])
    prior.update([_logits(torch.tensor([-5.0] * 4))])
    before = prior.fraction.clone()
    prior.set_target([0.5, 0.5])  # a resumed run sets the same target again
    assert torch.equal(prior.fraction, before)
    with pytest.raises(ValueError, match="class fractions"):
        prior.set_target([1.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="class fractions"):
        prior.set_target([0.0, 0.0])


def test_label_fractions_are_the_labelled_crops_class_shares(tmp_path):
    seg = np.zeros((20, 20, 20), dtype=np.uint8)
    seg[:10] = 1  # half of the volume; a crop of the whole volume sees exactly that
    np.save(tmp_path / "a.npy", np.zeros((2, 20, 20, 20), dtype=np.float32))
    np.save(tmp_path / "a_seg.npy", seg)
    data = TwoStreamBatches(tmp_path, ["a"], [], (20, 20, 20), 2, 1, seed=0)
    assert data.label_fractions(2, crops_per_case=3) == pytest.approx([0.5, 0.5])
    small = TwoStreamBatches(tmp_path, ["a"], [], (8, 8, 8), 2, 1, seed=0)
    first = small.label_fractions(2)
    assert first.sum() == pytest.approx(1.0) and 0.0 < first[1] < 1.0
    assert np.array_equal(first, small.label_fractions(2))  # fixed by the seed
    with pytest.raises(InputError, match="a_seg.npy"):
        small.label_fractions(1)


def _ctx(**options) -> MethodContext:
    return MethodContext(("t1ce", "t2"), 2, ModelConfig(base_width=4, dropout=0.0),
                         MethodConfig(name="ours", options=options), 100)


@pytest.mark.parametrize("consistency", ["cross_pseudo", "foreground_pseudo"])
def test_ours_with_the_prior_shifts_its_pseudo_labels_and_updates_the_bias(consistency):
    torch.manual_seed(0)
    method = build_method(_ctx(consistency=consistency, pseudo_prior="match", prior_rate=0.5))
    assert method.needs_label_prior
    method.set_label_prior(np.array([0.01, 0.99]))  # far more foreground than predicted
    image = torch.rand(4, 2, 16, 16, 16)
    label = (torch.rand(2, 16, 16, 16) > 0.5).long()
    losses = method.training_losses(image, label, iteration=99)
    assert torch.isfinite(losses["loss"]) and float(losses["prior_bias"]) > 0
    losses["loss"].backward()
    assert "prior.bias" in method.state_dict()


def test_prior_is_off_by_default_and_refused_with_soft_targets():
    assert not build_method(_ctx()).needs_label_prior
    assert "prior.bias" not in build_method(_ctx()).state_dict()
    with pytest.raises(ConfigError, match="pseudo_prior"):
        build_method(_ctx(consistency="mse", pseudo_prior="cap"))


def test_training_with_the_prior_resumes_exactly(tmp_path, synthetic_cache):
    cache = synthetic_cache(tmp_path / "data")
    over = {"cache": str(cache.root), "splits.labeled": 2, "splits.val": 1, "splits.test": 1,
            "model.base_width": 2, "model.dropout": 0.0, "train.crop_size": [16, 16, 16],
            "train.batch_size": 4, "train.labeled_bs": 2, "train.num_workers": 0,
            "train.device": "cpu", "train.max_iterations": 4, "train.val_every": 4,
            "train.checkpoint_every": 2, "method.options.pseudo_prior": "match",
            "method.options.prior_rate": 0.3}
    cfg = load_config("demo", [f"{k}={json.dumps(v)}" for k, v in over.items()])
    train(cfg, tmp_path / "straight", progress=False)
    train(cfg, tmp_path / "part", progress=False, stop_at=2)
    train(cfg, tmp_path / "part", resume=True, progress=False)
    a = load_checkpoint(tmp_path / "straight" / "checkpoints" / "last.pt")["method"]
    b = load_checkpoint(tmp_path / "part" / "checkpoints" / "last.pt")["method"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert int(a["prior.steps"]) == 4 and float(a["prior.bias"][1]) != 0.0
    assert 0.0 < float(a["prior.target"][1]) < 1.0
