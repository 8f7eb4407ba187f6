"""Backbone variants of the single-network baselines, built from the VNet ``Encoder``/``Decoder``.

- :class:`MultiScaleVNet` (URPC): the VNet with one extra 1×1×1 head on each of the first three
  decoder stages (1/8, 1/4 and 1/2 resolution). Every head is preceded by ``Dropout3d`` with the
  backbone's dropout probability (as the backbone's own output head is), and the low-resolution
  logits are up-sampled to the input size by trilinear interpolation (``align_corners=False``).
  The full-resolution output is the backbone's own head, so :meth:`MultiScaleVNet.segment` is
  exactly a VNet forward pass and never touches the auxiliary heads.
- :class:`DualDecoderVNet` (MLRPL): one shared encoder and two decoders that differ in their
  up-sampling (decoder 1: 2×2×2 transposed convolutions as in VNet; decoder 2: trilinear
  interpolation followed by a 3×3×3 convolution). Each decoder returns its logits and its last
  feature map (the full-resolution decoder feature before the head's dropout and 1×1×1 conv).

Both networks take the modalities concatenated as input channels; spatial sizes must be
divisible by 16.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from duetseg.models.blocks import init_weights
from duetseg.models.vnet import Decoder, Encoder

__all__ = ["MultiScaleVNet", "DualDecoderVNet", "DECODER_UPSAMPLING"]

DECODER_UPSAMPLING: tuple[str, str] = ("transpose", "trilinear")


class MultiScaleVNet(nn.Module):
    """VNet with deep-supervision heads at 1/8, 1/4, 1/2 and full resolution.

    Args:
        in_channels: input channels (concatenated modalities).
        num_classes: output classes.
        base_width: first-stage width ``w``.
        dropout: ``Dropout3d`` probability (bottleneck and before every head).
        norm: ``"batch"`` or ``"instance"``.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        base_width: int = 16,
        dropout: float = 0.5,
        norm: str = "batch",
    ) -> None:
        super().__init__()
        self.encoder = Encoder(in_channels, base_width, norm)
        self.decoder = Decoder(num_classes, base_width, dropout, norm)
        self.aux_heads = nn.ModuleList(
            nn.Sequential(nn.Dropout3d(dropout), nn.Conv3d(channels, num_classes, kernel_size=1))
            for channels in self.decoder.channels[:-1]
        )
        init_weights(self)

    def forward(self, x: Tensor) -> list[Tensor]:
        """Logits of every scale, all at the input's spatial size.

        Args:
            x: ``(B, in_channels, X, Y, Z)``, every spatial size divisible by 16.

        Returns:
            Four logits ``(B, num_classes, X, Y, Z)`` from the 1/8, 1/4, 1/2 and full-resolution
            decoder stages, in that order (the last one is the main output).

        Raises:
            ValueError: wrong input shape.
        """
        features = self.encoder(x)
        stages = self.decoder.decode(features[-1], features[:-1])
        size = tuple(x.shape[2:])
        outputs = [
            F.interpolate(head(feature), size=size, mode="trilinear", align_corners=False)
            for head, feature in zip(self.aux_heads, stages[:-1], strict=True)
        ]
        outputs.append(self.decoder.head(stages[-1]))
        return outputs

    def segment(self, x: Tensor) -> Tensor:
        """Full-resolution logits only (inference; the auxiliary heads are not run).

        Args:
            x: ``(B, in_channels, X, Y, Z)``.

        Returns:
            Logits ``(B, num_classes, X, Y, Z)``.
        """
        features = self.encoder(x)
        return self.decoder(features[-1], features[:-1])


class DualDecoderVNet(nn.Module):
    """Shared VNet encoder with a transposed-conv decoder and an interpolation decoder.

    Args:
        in_channels: input channels (concatenated modalities).
        num_classes: output classes.
        base_width: first-stage width ``w``.
        dropout: ``Dropout3d`` probability (each decoder draws its own masks).
        norm: ``"batch"`` or ``"instance"``.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        base_width: int = 16,
        dropout: float = 0.5,
        norm: str = "batch",
    ) -> None:
        super().__init__()
        self.encoder = Encoder(in_channels, base_width, norm)
        self.decoders = nn.ModuleList(
            Decoder(num_classes, base_width, dropout, norm, upsample=mode)
            for mode in DECODER_UPSAMPLING
        )
        init_weights(self)

    def forward(self, x: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        """Logits and last feature map of both decoders.

        Args:
            x: ``(B, in_channels, X, Y, Z)``, every spatial size divisible by 16.

        Returns:
            ``(logits, features)``: two lists (decoder 1, decoder 2) of ``(B, num_classes, X, Y,
            Z)`` logits and ``(B, w, X, Y, Z)`` full-resolution decoder features.

        Raises:
            ValueError: wrong input shape.
        """
        encoded = self.encoder(x)
        logits, features = [], []
        for decoder in self.decoders:
            last = decoder.decode(encoded[-1], encoded[:-1])[-1]
            features.append(last)
            logits.append(decoder.head(last))
        return logits, features
