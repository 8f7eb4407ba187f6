"""Every registered method trains a few steps on synthetic data without NaN and learns."""

import pytest
import torch

from duetseg.config import MethodConfig, ModelConfig
from duetseg.methods import MethodContext, build_method
from duetseg.methods.registry import METHODS


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(4, 2, 16, 16, 16, generator=g) * 0.2
    label = torch.zeros(2, 16, 16, 16, dtype=torch.long)
    label[:, 4:11, 5:12, 3:10] = 1
    image[:2, 0][label == 1] += 0.8  # lesion bright in modality 0 ...
    image[:2, 1][label == 1] += 0.5  # ... and in modality 1
    image[2:, :, 6:12, 2:9, 5:12] += 0.7  # unlabelled crops with a lesion elsewhere
    return image, label


@pytest.mark.parametrize("name", sorted(METHODS))
def test_method_trains_without_nan_and_reduces_supervised_loss(name):
    torch.manual_seed(0)
    # Each method's own ramp-up over a 200-iteration schedule: the unsupervised terms are
    # computed (and must be finite) from the first step, with the weights a real run has.
    ctx = MethodContext(("t1ce", "t2"), 2, ModelConfig(base_width=4, dropout=0.0),
                        MethodConfig(name=name), max_iterations=200)
    method = build_method(ctx).train()
    opt = torch.optim.SGD(list(method.trainable_parameters()), lr=0.05, momentum=0.9)
    image, label = _batch()
    if not method.uses_unlabeled:
        image = image[:2]
    first = None
    for it in range(25):
        losses = method.training_losses(image, label, it)
        assert all(torch.isfinite(v).all() for v in losses.values()), (name, it, losses)
        opt.zero_grad()
        losses["loss"].backward()
        opt.step()
        method.after_step(it)
        if first is None:
            first = float(losses["sup"].detach())
    assert float(losses["sup"].detach()) < 0.8 * first, (name, first, losses["sup"])
    method.eval()
    with torch.no_grad():
        out = method.output_probabilities(image[:1])
    assert method.primary_output in out
    for p in out.values():
        assert torch.allclose(p.sum(1), torch.ones_like(p[:, 0]), atol=1e-5)
