"""Networks built from a ModelConfig: one factory, unchanged parameter names (old checkpoints)."""

from __future__ import annotations

import hashlib
import inspect
import subprocess
import sys

import pytest
import torch

from duetseg.config import ModelConfig
from duetseg.methods import networks
from duetseg.methods.networks import cmcnet_from_config, duetnet_from_config, vnet_from_config
from duetseg.models import CMCNet, DuetNet, VNet
from duetseg.models.enhancement import CrossModalEnhancement, NoEnhancement
from duetseg.models.fusion import MultiModalFusion, NoFusion

# Taken from DuetNet(2, 2, ModelConfig()) and CMCNet(2, 2, ModelConfig()) before the networks
# took plain arguments: checkpoints saved then must load into the networks built now.
DUETNET_KEYS = 482
DUETNET_FIRST = ["encoders.0.blocks.0.0.0.weight", "encoders.0.blocks.0.0.0.bias",
                 "encoders.0.blocks.0.0.1.weight"]
DUETNET_LAST = ["decoders.1.blocks.3.0.1.num_batches_tracked", "decoders.1.out_conv.weight",
                "decoders.1.out_conv.bias"]
DUETNET_SOME = ["fusions.0.conv1.0.weight", "fusions.3.conv2.bias",
                "bottleneck_mae.branches.0.fields.psi1.0.weight",
                "bottleneck_mae.branches.1.heads.bias"]
DUETNET_SHA = "9a48e0d8fa1a3f5f0e9bed4f2a9a1ba9108fedaec7241e1e498e4b433a1c29ea"
CMCNET_KEYS = 218
CMCNET_SOME = ["encoder.blocks.0.0.0.weight", "attention.fc.0.weight", "fusion.gate.3.bias",
               "decoder.out_conv.bias"]
CMCNET_SHA = "951431e0d897f8aef223352a79aaf9fb27a10a2c02c4bcbb8b6d13d62734407b"


def _layout(net: torch.nn.Module) -> tuple[list[str], str]:
    """State-dict keys and the SHA-256 of the ``(key, shape)`` list."""
    shapes = [(k, tuple(v.shape)) for k, v in net.state_dict().items()]
    return [k for k, _ in shapes], hashlib.sha256(repr(shapes).encode()).hexdigest()


def test_duetnet_state_dict_keys_unchanged() -> None:
    keys, digest = _layout(duetnet_from_config(2, 2, ModelConfig()))
    assert len(keys) == DUETNET_KEYS
    assert keys[:3] == DUETNET_FIRST and keys[-3:] == DUETNET_LAST
    assert set(DUETNET_SOME) <= set(keys)
    assert digest == DUETNET_SHA


def test_cmcnet_state_dict_keys_unchanged() -> None:
    keys, digest = _layout(cmcnet_from_config(2, 2, ModelConfig()))
    assert len(keys) == CMCNET_KEYS
    assert set(CMCNET_SOME) <= set(keys)
    assert digest == CMCNET_SHA


def test_model_config_fields_are_the_duetnet_arguments() -> None:
    """A setting added to ModelConfig must also be a DuetNet argument (and back)."""
    params = inspect.signature(DuetNet).parameters.values()
    keyword_only = {p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}
    assert keyword_only == set(ModelConfig.model_fields)


def test_duetnet_from_config_passes_every_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = {}

    def record(in_modalities: int, num_classes: int, **kwargs: object) -> str:
        seen.update(kwargs, in_modalities=in_modalities, num_classes=num_classes)
        return "net"

    monkeypatch.setattr(networks, "DuetNet", record)
    cfg = ModelConfig(base_width=3, fusion="add", mae=False, mae_softmax="modalities",
                      mae_on_skips=True, mae_reduction=2, dropout=0.25, norm="instance",
                      branch_input="all")
    assert duetnet_from_config(3, 4, cfg) == "net"
    assert seen == {**cfg.model_dump(), "in_modalities": 3, "num_classes": 4}


def test_duetnet_from_config_builds_the_configured_network() -> None:
    cfg = ModelConfig(base_width=4, fusion="none", mae_softmax="modalities", mae_on_skips=True,
                      dropout=0.25, norm="instance", branch_input="all")
    net = duetnet_from_config(3, 2, cfg)
    assert net.encoders[0].channels[0] == 4 and net.encoders[0].in_channels == 3
    assert all(isinstance(f, NoFusion) for f in net.fusions)
    assert isinstance(net.bottleneck_mae, CrossModalEnhancement)
    assert not any(isinstance(m, NoEnhancement) for m in net.skip_maes)
    assert net.decoders[0].head_dropout.p == 0.25
    assert any(isinstance(m, torch.nn.InstanceNorm3d) for m in net.modules())
    default = duetnet_from_config(2, 2, ModelConfig(base_width=4))
    assert all(isinstance(f, MultiModalFusion) for f in default.fusions)
    assert all(isinstance(m, NoEnhancement) for m in default.skip_maes)


def test_cmcnet_and_vnet_from_config_take_the_backbone_settings() -> None:
    cfg = ModelConfig(base_width=4, dropout=0.1, norm="instance")
    cmc = cmcnet_from_config(2, 3, cfg, se_reduction=2)
    assert isinstance(cmc, CMCNet) and cmc.encoder.channels[0] == 4
    assert cmc.decoder.head_dropout.p == 0.1
    assert cmc.attention.fc[0].out_features == 64 // 2
    vnet = vnet_from_config(2, 3, cfg)
    assert isinstance(vnet, VNet) and vnet.encoder.in_channels == 2
    assert vnet.decoder.out_conv.out_channels == 3 and vnet.decoder.head_dropout.p == 0.1
    assert any(isinstance(m, torch.nn.InstanceNorm3d) for m in vnet.modules())


def test_plain_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="branch_input"):
        DuetNet(2, 2, base_width=4, branch_input="some")
    with pytest.raises(ValueError, match="fusion mode"):
        DuetNet(2, 2, base_width=4, fusion="concat")
    with pytest.raises(ValueError, match="at least 2"):
        CMCNet(1, 2, base_width=4)


def test_the_models_package_does_not_read_the_config() -> None:
    code = ("import sys, duetseg.models; "
            "print([m for m in sys.modules if m.startswith('duetseg.config')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"
