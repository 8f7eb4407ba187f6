"""CMCNet: one VNet encoder and decoder shared by every modality (the CMC baseline's network).

Cross-modality collaboration (CMC, Zhou et al., MICCAI 2024) as described in the published
paper; this is our own implementation, not a port of the release.

Every modality goes through the *same* ``Encoder`` and ``Decoder`` weights as a single-channel
image. For efficiency the K modalities are stacked along the batch axis and run in one pass;
per-sample this is the same as K separate passes, except that BatchNorm statistics in
training mode are pooled over all modalities (which is also what its running statistics,
used at inference, describe).

At the bottleneck, for each modality's feature ``b_m``:

1. channel attention (squeeze-and-excitation, shared weights): ``b_m <- b_m * SE(b_m)``;
2. fusion gate from all modalities: ``g = sigmoid(conv1(ReLU(norm(conv3(cat(b_1..b_K))))))``
   (a 3×3×3 convolution from ``K·c`` to ``c`` channels, then a 1×1×1 convolution);
3. each branch combines its own and the fused features: ``b_m' = b_m + b_m * g`` (the
   residual keeps the modality-specific signal; the gate re-weights it with what the other
   modalities see), then decodes with its own skips.

The global-average-pooled attended bottlenecks (step 1, before fusion, so they stay
modality-specific) are returned for the channel-wise semantic consistency loss.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from duetseg.models.blocks import check_spatial_size, init_weights, make_norm
from duetseg.models.vnet import NUM_STAGES, Decoder, Encoder

__all__ = ["ChannelAttention", "BottleneckFusion", "CMCNet"]


class ChannelAttention(nn.Module):
    """Squeeze-and-excitation: ``x * sigmoid(W2 ReLU(W1 GAP(x)))``.

    Args:
        channels: feature channels.
        reduction: hidden size is ``max(1, channels // reduction)``.
    """

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.fc = nn.Sequential(
            nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        """Re-weight the channels of ``x`` ``(B, C, X, Y, Z)``."""
        weights = torch.sigmoid(self.fc(x.mean(dim=(2, 3, 4))))
        return x * weights[:, :, None, None, None]


class BottleneckFusion(nn.Module):
    """``concat → conv 3×3×3 → norm → ReLU → conv 1×1×1 → sigmoid`` gate over K features.

    Args:
        channels: channels of each modality's bottleneck.
        num_modalities: K.
        norm: normalisation name.
    """

    def __init__(self, channels: int, num_modalities: int, norm: str = "batch") -> None:
        super().__init__()
        self.gate = nn.Sequential(
            nn.Conv3d(channels * num_modalities, channels, kernel_size=3, padding=1),
            make_norm(norm, channels),
            nn.ReLU(inplace=True),
            nn.Conv3d(channels, channels, kernel_size=1),
            nn.Sigmoid(),
        )

    def forward(self, features: list[Tensor]) -> list[Tensor]:
        """Return ``b_m + b_m * g`` for every modality feature ``b_m``."""
        g = self.gate(torch.cat(features, dim=1))
        return [f + f * g for f in features]


class CMCNet(nn.Module):
    """Shared-weight encoder/decoder with SE attention and a fused bottleneck.

    Args:
        in_modalities: number of modalities K (≥ 2); output ``m`` is modality ``m``'s branch.
        num_classes: output classes.
        base_width: first-stage width ``w`` of the shared VNet.
        dropout: ``Dropout3d`` probability of the decoder.
        norm: ``"batch"`` or ``"instance"``.
        se_reduction: reduction ratio of the channel attention.

    Raises:
        ValueError: ``in_modalities < 2``.
    """

    def __init__(
        self,
        in_modalities: int,
        num_classes: int,
        *,
        base_width: int = 16,
        dropout: float = 0.5,
        norm: str = "batch",
        se_reduction: int = 4,
    ) -> None:
        super().__init__()
        if in_modalities < 2:
            raise ValueError(f"CMCNet needs at least 2 modalities, got {in_modalities}")
        self.num_modalities = in_modalities
        self.encoder = Encoder(1, base_width, norm)
        channels = self.encoder.channels[-1]
        self.attention = ChannelAttention(channels, se_reduction)
        self.fusion = BottleneckFusion(channels, in_modalities, norm)
        self.decoder = Decoder(num_classes, base_width, dropout, norm)
        init_weights(self)

    def forward_with_features(self, x: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        """Segment every modality and return its pooled bottleneck.

        Args:
            x: ``(B, K, X, Y, Z)``; channel m is modality m; spatial size divisible by 16.

        Returns:
            ``(logits, pooled)``: K logits ``(B, num_classes, X, Y, Z)`` and K channel vectors
            ``(B, 16w)`` (global-average-pooled attended bottleneck, before fusion).

        Raises:
            ValueError: wrong input shape.
        """
        check_spatial_size(x, 2**NUM_STAGES, channels=[self.num_modalities])
        b, k = x.shape[:2]
        stacked = x.transpose(0, 1).reshape(k * b, 1, *x.shape[2:])  # modality-major
        features = self.encoder(stacked)
        attended = self.attention(features[-1])
        per_modality = list(attended.split(b, dim=0))
        fused = torch.cat(self.fusion(per_modality), dim=0)
        logits = self.decoder(fused, features[:-1]).split(b, dim=0)
        pooled = [f.mean(dim=(2, 3, 4)) for f in per_modality]
        return list(logits), pooled

    def forward(self, x: Tensor) -> list[Tensor]:
        """K logits tensors ``(B, num_classes, X, Y, Z)``, one per modality branch."""
        return self.forward_with_features(x)[0]
