"""``model.branches``: DuetNet's branch count decoupled from the number of modalities."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from duetseg.config import MethodConfig, ModelConfig, TrainConfig
from duetseg.errors import ConfigError
from duetseg.methods import MethodContext, build_method, fit_branches
from duetseg.methods.networks import duetnet_from_config
from duetseg.methods.ours import Ours
from duetseg.methods.supervised import Supervised
from duetseg.models import DuetNet
from duetseg.workflows.missing import present_outputs

pytestmark = pytest.mark.usefixtures("one_thread")

READS_ALL = {"branches": 2, "branch_input": "all"}


def _method(modalities: tuple[str, ...], name: str = "ours", **model: object):
    ctx = MethodContext(modalities, 2, ModelConfig(base_width=4, dropout=0.0, **model),
                        MethodConfig(name=name), max_iterations=10)
    return build_method(ctx)


def test_one_channel_feeds_two_independent_branches() -> None:
    torch.manual_seed(0)
    net = DuetNet(1, 3, base_width=4, dropout=0.0, branch_input="all", branches=2).eval()
    assert net.num_branches == 2 and net.num_modalities == 1
    assert [enc.in_channels for enc in net.encoders] == [1, 1]
    assert net.fusions[0].num_modalities == 2
    x = torch.randn(2, 1, 32, 32, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits = net(x)
    assert len(logits) == 2 and all(lg.shape == (2, 3, 32, 32, 16) for lg in logits)
    assert not torch.allclose(logits[0], logits[1])  # same input, own weights
    assert not torch.equal(net.encoders[0].blocks[0][0][0].weight,
                           net.encoders[1].blocks[0][0][0].weight)
    with pytest.raises(ValueError, match="input channel"):
        net(torch.randn(1, 2, 16, 16, 16))


def test_plain_arguments_refuse_own_inputs_with_another_branch_count() -> None:
    with pytest.raises(ValueError, match="branch_input 'all'"):
        DuetNet(2, 2, base_width=4, branches=3)
    with pytest.raises(ValueError, match="at least 2 branches"):
        DuetNet(1, 2, base_width=4, branch_input="all")
    assert len(DuetNet(2, 2, base_width=4, branches=3, branch_input="all").decoders) == 3


@pytest.mark.parametrize("k", [2, 3])
def test_unset_branches_builds_the_network_of_one_branch_per_modality(k: int) -> None:
    torch.manual_seed(0)
    default = duetnet_from_config(k, 2, ModelConfig(base_width=4))
    torch.manual_seed(0)
    explicit = duetnet_from_config(k, 2, ModelConfig(base_width=4, branches=k))
    a, b = default.state_dict(), explicit.state_dict()
    assert list(a) == list(b) and all(torch.equal(a[key], b[key]) for key in a)
    assert default.num_branches == k == len(default.encoders)


def test_branches_other_than_modalities_with_own_inputs_is_a_config_error() -> None:
    for modalities, branches in ((("t2",), 2), (("t1ce", "t2"), 3)):
        with pytest.raises(ConfigError, match=r"model\.branches.*model\.branch_input=all"):
            _method(modalities, branches=branches)
    assert len(_method(("t1ce", "t2"), branches=2).net.encoders) == 2  # = modalities: fine


def test_minimum_modalities_reads_the_model_settings() -> None:
    options = Ours.parse_options({})
    assert Ours.minimum_modalities(options) == 2
    assert Ours.minimum_modalities(options, ModelConfig(**READS_ALL)) == 1
    vnet = Supervised.parse_options({"network": "vnet"})
    assert Supervised.minimum_modalities(vnet, ModelConfig()) == 1
    assert Supervised.minimum_modalities(Supervised.parse_options({}), ModelConfig()) == 2
    with pytest.raises(ConfigError, match=r"at least 2 modalities.*model\.branches=2"):
        _method(("t2",))
    with pytest.raises(ConfigError, match="at least 2 modalities") as info:
        _method(("t2",), name="cmc")  # its network has one branch per modality, always
    assert "model.branches" not in str(info.value)


def test_branches_reading_every_input_belong_to_no_modality() -> None:
    method = _method(("t1ce", "t2"), branch_input="all").eval()
    branches = [s for s in method.outputs() if s.kind == "branch"]
    assert [(s.name, s.modality) for s in branches] == [("branch_a", None), ("branch_b", None)]
    assert method.describe_outputs()["branch_a"] == "branch reading t1ce+t2"
    own = _method(("t1ce", "t2"))
    assert [s.modality for s in own.outputs() if s.kind == "branch"] == ["t1ce", "t2"]
    one = _method(("t2",), **READS_ALL).eval()
    assert one.describe_outputs() == {"branch_a": "branch reading t2",
                                      "branch_b": "branch reading t2",
                                      "ensemble": "mean of the branches' softmax"}
    with torch.no_grad():
        probs = one.output_probabilities(torch.rand(1, 1, 16, 16, 16))
    assert list(probs) == ["branch_a", "branch_b", "ensemble"]


def test_a_missing_modality_keeps_branches_that_read_every_input() -> None:
    rng = np.random.default_rng(0)
    a, b = (rng.dirichlet([1, 1], size=(4,)).T.astype(np.float32) for _ in range(2))
    probs = {"branch_a": a, "branch_b": b, "ensemble": (a + b) / 2}
    mods = ["t1ce", "t2"]
    kept = present_outputs(probs, mods, ["t2"], {"branch_a": None, "branch_b": None})
    assert sorted(kept) == ["branch_a", "branch_b", "ensemble"]
    np.testing.assert_allclose(kept["ensemble"], (a + b) / 2, rtol=1e-6)
    own = present_outputs(probs, mods, ["t2"], {"branch_a": "t1ce", "branch_b": "t2"})
    assert sorted(own) == ["branch_b", "ensemble"]


def test_modality_dropout_masks_only_branches_that_read_one_modality() -> None:
    dropout = TrainConfig(modality_dropout=0.3)
    t1ce_dropped = torch.tensor([[True, True], [False, True]])
    for name in ("ours", "supervised"):
        own = _method(("t1ce", "t2"), name=name)
        every = _method(("t1ce", "t2"), name=name, branch_input="all")
        for method in (own, every):
            method.check_training(dropout)
            method.set_present(t1ce_dropped)
        assert torch.equal(own.present_mask(), t1ce_dropped)
        assert every.present_mask() is None  # each branch still reads t2
    with pytest.raises(ConfigError, match=r"train\.modality_dropout.*two modalities.*t2"):
        _method(("t2",), **READS_ALL).check_training(dropout)
    _method(("t2",), **READS_ALL).check_training(TrainConfig())  # no dropout: fine


def test_fit_branches_gives_one_modality_two_branches_that_read_it() -> None:
    fitted = fit_branches(MethodConfig(name="ours"), ModelConfig(), ("t2",))
    assert (fitted.branches, fitted.branch_input) == (2, "all")
    both = ModelConfig()
    assert fit_branches(MethodConfig(name="ours"), both, ("t1ce", "t2")) is both
    chosen = ModelConfig(branches=3, branch_input="all")
    assert fit_branches(MethodConfig(name="ours"), chosen, ("t2",)) is chosen
    single = ModelConfig()
    vnet = MethodConfig(name="supervised", options={"network": "vnet"})
    assert fit_branches(vnet, single, ("t2",)) is single  # one network takes one modality
    assert fit_branches(MethodConfig(name="cmc"), single, ("t2",)) is single  # cannot fit
    with pytest.raises(ConfigError, match="at least 2 modalities"):
        build_method(MethodContext(("t2",), 2, single, MethodConfig(name="cmc"), 10))
