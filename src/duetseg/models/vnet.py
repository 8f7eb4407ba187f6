"""VNet-style encoder, decoder and single network (the paper's backbone).

Widths ``w, 2w, 4w, 8w, 16w``; encoder stages of 1, 2, 3, 3, 3 convolutions (3×3×3, norm,
ReLU) at full, 1/2, 1/4, 1/8 and 1/16 resolution (the last is the bottleneck), down-sampled
by 2×2×2 stride-2 convolutions; decoder stages of 3, 3, 2, 1 convolutions after 2×2×2
transposed convolutions, with *additive* skips; ``Dropout3d`` on the bottleneck and before
the final 1×1×1 convolution. With one input channel and ``w = 16`` it has about 9.4 M
parameters.

``Encoder`` and ``Decoder`` are separate so that other methods can reuse them: the encoder
can run one stage at a time (:meth:`Encoder.stage`) or take a hook that rewrites each stage
output before it feeds both the skip and the next down-sampling; the decoder exposes its
per-stage features (:meth:`Decoder.decode`) for multi-scale heads or feature-level losses.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from duetseg.models.blocks import ConvBlock, DownBlock, UpBlock, check_spatial_size, init_weights

__all__ = ["ENCODER_CONVS", "DECODER_CONVS", "NUM_STAGES", "Encoder", "Decoder", "VNet"]

ENCODER_CONVS: tuple[int, ...] = (1, 2, 3, 3, 3)
DECODER_CONVS: tuple[int, ...] = (3, 3, 2, 1)
NUM_STAGES = 4  # encoder stages with a skip; the bottleneck is stage index 4

StageHook = Callable[[int, Tensor], Tensor]


class Encoder(nn.Module):
    """VNet encoder: four skip stages and a bottleneck.

    Args:
        in_channels: input channels.
        base_width: channels of the first stage ``w`` (stage ``s`` has ``w * 2**s``).
        norm: ``"batch"`` or ``"instance"``.

    Attributes:
        channels: channel count of each of the five outputs.
    """

    def __init__(self, in_channels: int, base_width: int = 16, norm: str = "batch") -> None:
        super().__init__()
        self.in_channels = in_channels
        self.channels = [base_width * 2**s for s in range(len(ENCODER_CONVS))]
        self.blocks = nn.ModuleList()
        self.downs = nn.ModuleList()
        previous = in_channels
        for s, n_convs in enumerate(ENCODER_CONVS):
            if s > 0:
                self.downs.append(DownBlock(previous, self.channels[s], norm))
                previous = self.channels[s]
            self.blocks.append(ConvBlock(previous, self.channels[s], n_convs, norm))
            previous = self.channels[s]

    def stage(self, index: int, x: Tensor) -> Tensor:
        """Run one stage: down-sample (except for stage 0), then the conv block.

        Args:
            index: 0..3 for the skip stages, 4 for the bottleneck.
            x: the network input (index 0) or the previous stage's (possibly modified) output.

        Returns:
            The stage output with ``channels[index]`` channels.
        """
        if index > 0:
            x = self.downs[index - 1](x)
        return self.blocks[index](x)

    def forward(self, x: Tensor, hook: StageHook | None = None) -> list[Tensor]:
        """Encode ``x``.

        Args:
            x: ``(B, in_channels, X, Y, Z)``, spatial size divisible by 16.
            hook: optional ``hook(stage_index, feature) -> feature`` applied to each of the
                four skip-stage outputs before it feeds the skip and the next stage.

        Returns:
            ``[f1, f2, f3, f4, bottleneck]`` at full, 1/2, 1/4, 1/8 and 1/16 resolution.

        Raises:
            ValueError: wrong input rank, channels or spatial size.
        """
        check_spatial_size(x, 2**NUM_STAGES, channels=[self.in_channels])
        features = []
        for index in range(len(self.blocks)):
            x = self.stage(index, x)
            if hook is not None and index < NUM_STAGES:
                x = hook(index, x)
            features.append(x)
        return features


class Decoder(nn.Module):
    """VNet decoder with additive skips and a 1×1×1 output convolution.

    Args:
        num_classes: output channels (logits).
        base_width: ``w`` of the matching encoder.
        dropout: ``Dropout3d`` probability on the bottleneck and before the output conv.
        norm: ``"batch"`` or ``"instance"``.
        upsample: ``"transpose"`` (VNet) or ``"trilinear"`` (interpolation + conv).

    Attributes:
        channels: channel count of each decoder stage output (1/8, 1/4, 1/2, full resolution).
    """

    def __init__(
        self,
        num_classes: int,
        base_width: int = 16,
        dropout: float = 0.5,
        norm: str = "batch",
        upsample: str = "transpose",
    ) -> None:
        super().__init__()
        widths = [base_width * 2**s for s in range(len(ENCODER_CONVS))]
        self.channels = widths[-2::-1]
        self.ups = nn.ModuleList()
        self.blocks = nn.ModuleList()
        for i, n_convs in enumerate(DECODER_CONVS):
            in_ch, out_ch = widths[-1 - i], widths[-2 - i]
            self.ups.append(UpBlock(in_ch, out_ch, norm, upsample))
            self.blocks.append(ConvBlock(out_ch, out_ch, n_convs, norm))
        self.bottleneck_dropout = nn.Dropout3d(dropout)
        self.head_dropout = nn.Dropout3d(dropout)
        self.out_conv = nn.Conv3d(base_width, num_classes, kernel_size=1)

    def decode(self, bottleneck: Tensor, skips: list[Tensor]) -> list[Tensor]:
        """Run the decoder stages without the output head.

        Args:
            bottleneck: ``(B, 16w, X/16, Y/16, Z/16)``.
            skips: the four encoder stage features ``[f1, f2, f3, f4]`` (full → 1/8).

        Returns:
            The four decoder stage features at 1/8, 1/4, 1/2 and full resolution.

        Raises:
            ValueError: ``skips`` does not hold four tensors.
        """
        if len(skips) != NUM_STAGES:
            raise ValueError(f"expected {NUM_STAGES} skip features, got {len(skips)}")
        x = self.bottleneck_dropout(bottleneck)
        outputs = []
        for i, (up, block) in enumerate(zip(self.ups, self.blocks, strict=True)):
            x = block(up(x) + skips[-1 - i])
            outputs.append(x)
        return outputs

    def head(self, feature: Tensor) -> Tensor:
        """Dropout and 1×1×1 output convolution on the full-resolution feature."""
        return self.out_conv(self.head_dropout(feature))

    def forward(self, bottleneck: Tensor, skips: list[Tensor]) -> Tensor:
        """Decode to logits ``(B, num_classes, X, Y, Z)``.

        Args:
            bottleneck: the encoder's last output.
            skips: the encoder's four stage outputs (full → 1/8 resolution).

        Returns:
            Logits at full resolution.
        """
        return self.head(self.decode(bottleneck, skips)[-1])


class VNet(nn.Module):
    """Single VNet: ``Encoder`` + ``Decoder``.

    Args:
        in_channels: input channels (e.g. the number of concatenated modalities).
        num_classes: output classes.
        base_width: first-stage width ``w``.
        dropout: ``Dropout3d`` probability.
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
        init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        """Segment ``x``.

        Args:
            x: ``(B, in_channels, X, Y, Z)``, every spatial size divisible by 16.

        Returns:
            Logits ``(B, num_classes, X, Y, Z)``.

        Raises:
            ValueError: wrong input shape.
        """
        features = self.encoder(x)
        return self.decoder(features[-1], features[:-1])
