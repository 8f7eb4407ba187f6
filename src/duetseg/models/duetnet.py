"""DuetNet: VNet branches (one per modality by default), fused after every encoder stage.

Branch ``m`` sees input channel ``m`` only (``branch_input: own``, the paper) or every
channel (``branch_input: all``) and has its own encoder and decoder. The number of branches
K is the number of input channels unless ``branches`` sets it; another count needs
``branch_input: all`` (e.g. two branches that both read a single channel). After each of
the four encoder stages the K branch features go through multi-modal fusion (MMF,
:mod:`duetseg.models.fusion`); the fused tensors feed both the next stage and the skip of
their branch. The K bottlenecks go through modality-aware enhancement (MAE,
:mod:`duetseg.models.enhancement`), optionally the skips too, then each branch decodes to its
own logits. The user-facing prediction is the mean of the branches' softmaxes
(:func:`ensemble_probabilities`).

An absent modality (``train.modality_dropout``, or ``duetseg predict`` on a case lacking one)
is a zero input channel; the network itself has no notion of it. The absent branch still
runs on its zero image and its features still enter every MMF gate (and MAE across
modalities), so the fused features the present branches receive are those of "this
modality is blank": modality dropout trains the gates to cope with it, and prediction sees
exactly what training saw. What is masked is the use of the absent branch's *output*: no
loss during training (``ours``, ``supervised``), and no part in the ensemble or the
disagreement at prediction. A branch reading every channel has no absent input of its own.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from duetseg.models.blocks import check_spatial_size, init_weights
from duetseg.models.enhancement import NoEnhancement, build_enhancement
from duetseg.models.fusion import build_fusion
from duetseg.models.vnet import NUM_STAGES, Decoder, Encoder

__all__ = ["BRANCH_INPUTS", "DuetNet", "ensemble_probabilities"]

BRANCH_INPUTS: tuple[str, ...] = ("own", "all")


def ensemble_probabilities(logits_list: Sequence[Tensor]) -> Tensor:
    """Mean of the per-branch softmax probabilities.

    Args:
        logits_list: logits tensors ``(B, num_classes, ...)`` of equal shape.

    Returns:
        Probabilities of the same shape, summing to one over dim 1.

    Raises:
        ValueError: empty input.
    """
    if len(logits_list) == 0:
        raise ValueError("ensemble_probabilities needs at least one logits tensor")
    return torch.stack([torch.softmax(t, dim=1) for t in logits_list]).mean(dim=0)


class DuetNet(nn.Module):
    """Multi-branch segmentation network with MMF and MAE.

    The settings mirror :class:`duetseg.config.ModelConfig`; build from a config with
    :func:`duetseg.methods.networks.duetnet_from_config`.

    Args:
        in_modalities: number of input channels (modalities), ≥ 1.
        num_classes: output classes per branch.
        base_width: first-stage width ``w`` of every branch's VNet.
        fusion: MMF mode after each encoder stage, one of
            :data:`~duetseg.models.fusion.FUSION_MODES`.
        mae: enhance the bottlenecks with MAE (False: pass-through).
        mae_softmax: MAE reading, ``"kernels"`` or ``"modalities"``.
        mae_on_skips: also enhance the four skip features.
        mae_reduction: FC reduction ratio of MAE.
        dropout: ``Dropout3d`` probability of the decoders.
        norm: ``"batch"`` or ``"instance"``.
        branch_input: ``"own"`` (branch m reads modality m, the paper) or ``"all"`` (every
            branch reads every modality).
        branches: number of branches K (≥ 2); None = ``in_modalities``. A count other than
            ``in_modalities`` needs ``branch_input="all"``.

    Raises:
        ValueError: fewer than 2 branches, ``branch_input="own"`` with a branch count other
            than ``in_modalities``, or an unknown option value.
    """

    def __init__(
        self,
        in_modalities: int,
        num_classes: int,
        *,
        base_width: int = 16,
        fusion: str = "gate_residual",
        mae: bool = True,
        mae_softmax: str = "kernels",
        mae_on_skips: bool = False,
        mae_reduction: int = 4,
        dropout: float = 0.5,
        norm: str = "batch",
        branch_input: str = "own",
        branches: int | None = None,
    ) -> None:
        super().__init__()
        k = in_modalities if branches is None else branches
        if k < 2 or in_modalities < 1:
            raise ValueError(f"DuetNet needs at least 2 branches (one per modality unless "
                             f"branches is set), got {in_modalities} modalities and "
                             f"branches={branches}")
        if branch_input not in BRANCH_INPUTS:
            raise ValueError(f"unknown branch_input {branch_input!r}; expected one of "
                             f"{BRANCH_INPUTS}")
        if branch_input == "own" and k != in_modalities:
            raise ValueError(f"branch_input 'own' gives each of the {in_modalities} modalities "
                             f"its branch, so branches={branches} needs branch_input 'all'")
        self.num_modalities = in_modalities
        self.num_branches = k
        self.num_classes = num_classes
        self.reads_all = branch_input == "all"
        in_channels = in_modalities if self.reads_all else 1
        self.encoders = nn.ModuleList(Encoder(in_channels, base_width, norm) for _ in range(k))
        channels = self.encoders[0].channels
        self.fusions = nn.ModuleList(
            build_fusion(fusion, channels[s], k, norm) for s in range(NUM_STAGES)
        )

        def enhancement(c: int) -> nn.Module:
            return build_enhancement(mae, mae_softmax, c, k, mae_reduction, norm)

        self.bottleneck_mae = enhancement(channels[-1])
        self.skip_maes = nn.ModuleList(
            enhancement(channels[s]) if mae_on_skips else NoEnhancement()
            for s in range(NUM_STAGES)
        )
        self.decoders = nn.ModuleList(
            Decoder(num_classes, base_width, dropout, norm) for _ in range(k)
        )
        init_weights(self)

    def encode(self, x: Tensor) -> tuple[list[list[Tensor]], list[Tensor]]:
        """Run the fused encoders and the enhancement.

        Args:
            x: ``(B, in_modalities, X, Y, Z)``, spatial size divisible by 16.

        Returns:
            ``(skips, bottlenecks)``: ``skips[m]`` is branch m's four skip features (full → 1/8
            resolution, after fusion and optional MAE), ``bottlenecks[m]`` its enhanced
            bottleneck; one entry per branch.

        Raises:
            ValueError: wrong input shape.
        """
        check_spatial_size(x, 2**NUM_STAGES, channels=[self.num_modalities])
        features = [x if self.reads_all else x[:, m : m + 1]
                    for m in range(self.num_branches)]
        skips: list[list[Tensor]] = [[] for _ in range(self.num_branches)]
        for s in range(NUM_STAGES):
            features = [enc.stage(s, f) for enc, f in zip(self.encoders, features, strict=True)]
            features = self.fusions[s](features)
            for branch, f in zip(skips, self.skip_maes[s](features), strict=True):
                branch.append(f)
        bottlenecks = [
            enc.stage(NUM_STAGES, f) for enc, f in zip(self.encoders, features, strict=True)
        ]
        return skips, self.bottleneck_mae(bottlenecks)

    def forward(self, x: Tensor) -> list[Tensor]:
        """Segment with every branch.

        Args:
            x: ``(B, in_modalities, X, Y, Z)``; channel m is modality m.

        Returns:
            K logits tensors ``(B, num_classes, X, Y, Z)``, one per branch.

        Raises:
            ValueError: wrong input shape.
        """
        skips, bottlenecks = self.encode(x)
        return [dec(b, s) for dec, b, s in zip(self.decoders, bottlenecks, skips, strict=True)]

    @staticmethod
    def ensemble(logits_list: Sequence[Tensor]) -> Tensor:
        """Mean of the branches' softmaxes (see :func:`ensemble_probabilities`)."""
        return ensemble_probabilities(logits_list)
