"""Small 3D building blocks shared by every network in ``duetseg.models``.

All blocks work on 5D tensors ``(B, C, X, Y, Z)``. Normalisation is chosen by name
(``"batch"`` → ``BatchNorm3d``, ``"instance"`` → ``InstanceNorm3d(affine=True)``) so that
configs can switch it without touching the networks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor, nn

__all__ = [
    "NORM_LAYERS",
    "make_norm",
    "frozen_norm_statistics",
    "ConvNormAct",
    "ConvBlock",
    "DownBlock",
    "UpBlock",
    "init_weights",
    "check_spatial_size",
]

NORM_LAYERS: dict[str, Callable[[int], nn.Module]] = {
    "batch": lambda channels: nn.BatchNorm3d(channels),
    "instance": lambda channels: nn.InstanceNorm3d(channels, affine=True),
}


def make_norm(norm: str, channels: int) -> nn.Module:
    """Build a 3D normalisation layer by name.

    Args:
        norm: ``"batch"`` or ``"instance"``.
        channels: number of feature channels.

    Returns:
        The normalisation module.

    Raises:
        ValueError: unknown ``norm``.
    """
    try:
        factory = NORM_LAYERS[norm]
    except KeyError:
        raise ValueError(f"unknown norm {norm!r}; expected one of {sorted(NORM_LAYERS)}") from None
    return factory(channels)


@contextmanager
def frozen_norm_statistics(module: nn.Module) -> Iterator[None]:
    """Inside the block, batch-norm layers in training mode leave their running statistics.

    For an extra forward pass in training mode (e.g. a teacher's prediction on the clean
    crops): the batch still normalises with its own statistics, but ``running_mean``,
    ``running_var`` and ``num_batches_tracked`` end as they were, so the statistics used at
    inference come from the same batches as without that pass.
    """
    layers = [m for m in module.modules()
              if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    saved = [(m.momentum, m.num_batches_tracked.clone()) for m in layers]
    for m in layers:
        m.momentum = 0.0  # running = (1 - 0) * running + 0 * batch
    try:
        yield
    finally:
        for m, (momentum, tracked) in zip(layers, saved, strict=True):
            m.momentum = momentum
            m.num_batches_tracked.copy_(tracked)


class ConvNormAct(nn.Sequential):
    """``Conv3d → norm → ReLU`` with "same" padding.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: cubic kernel size (odd).
        norm: normalisation name (see :func:`make_norm`).
        dilation: dilation of the convolution; padding keeps the spatial size.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        norm: str = "batch",
        dilation: int = 1,
    ) -> None:
        padding = dilation * (kernel_size - 1) // 2
        super().__init__(
            nn.Conv3d(in_channels, out_channels, kernel_size, padding=padding, dilation=dilation),
            make_norm(norm, out_channels),
            nn.ReLU(inplace=True),
        )


class ConvBlock(nn.Sequential):
    """A stack of ``n_convs`` 3×3×3 ``ConvNormAct`` layers (one VNet stage).

    Args:
        in_channels: input channels of the first convolution.
        out_channels: output channels of every convolution.
        n_convs: number of convolutions (≥ 1).
        norm: normalisation name.
    """

    def __init__(self, in_channels: int, out_channels: int, n_convs: int, norm: str = "batch"):
        if n_convs < 1:
            raise ValueError(f"n_convs must be >= 1, got {n_convs}")
        layers = [
            ConvNormAct(in_channels if i == 0 else out_channels, out_channels, 3, norm)
            for i in range(n_convs)
        ]
        super().__init__(*layers)


class DownBlock(nn.Sequential):
    """2×2×2 stride-2 convolution (→ norm → ReLU): halves the spatial size.

    Args:
        in_channels: input channels.
        out_channels: output channels (usually ``2 * in_channels``).
        norm: normalisation name.
    """

    def __init__(self, in_channels: int, out_channels: int, norm: str = "batch") -> None:
        super().__init__(
            nn.Conv3d(in_channels, out_channels, kernel_size=2, stride=2),
            make_norm(norm, out_channels),
            nn.ReLU(inplace=True),
        )


class UpBlock(nn.Sequential):
    """Doubles the spatial size (→ norm → ReLU).

    Args:
        in_channels: input channels.
        out_channels: output channels (usually ``in_channels // 2``).
        norm: normalisation name.
        mode: ``"transpose"`` (2×2×2 stride-2 transposed convolution, VNet) or
            ``"trilinear"`` (trilinear interpolation followed by a 3×3×3 convolution).

    Raises:
        ValueError: unknown ``mode``.
    """

    def __init__(
        self, in_channels: int, out_channels: int, norm: str = "batch", mode: str = "transpose"
    ) -> None:
        if mode == "transpose":
            layers: list[nn.Module] = [
                nn.ConvTranspose3d(in_channels, out_channels, kernel_size=2, stride=2)
            ]
        elif mode == "trilinear":
            layers = [
                nn.Upsample(scale_factor=2, mode="trilinear", align_corners=False),
                nn.Conv3d(in_channels, out_channels, kernel_size=3, padding=1),
            ]
        else:
            raise ValueError(f"unknown up-sampling mode {mode!r}; use 'transpose' or 'trilinear'")
        super().__init__(*layers, make_norm(norm, out_channels), nn.ReLU(inplace=True))


def init_weights(module: nn.Module) -> None:
    """Kaiming-normal convolutions (zero bias), unit/zero affine norms, default linears.

    Args:
        module: any module; applied recursively via ``module.apply``.
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv3d, nn.ConvTranspose3d)):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm3d, nn.InstanceNorm3d)) and m.weight is not None:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def check_spatial_size(x: Tensor, divisor: int = 16, channels: Sequence[int] | None = None) -> None:
    """Check that ``x`` is 5D and its spatial size is divisible by ``divisor``.

    Args:
        x: input tensor ``(B, C, X, Y, Z)``.
        divisor: required divisor of every spatial dimension (16 for four down-samplings).
        channels: allowed channel counts, or None for any.

    Raises:
        ValueError: wrong rank, channel count or spatial size (the message gives the shape).
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 5:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"expected a 5D tensor (B, C, X, Y, Z), got shape {shape}")
    if channels is not None and x.shape[1] not in channels:
        raise ValueError(f"expected {list(channels)} input channel(s), got shape {tuple(x.shape)}")
    bad = [s for s in x.shape[2:] if s % divisor]
    if bad:
        raise ValueError(
            f"spatial size must be divisible by {divisor} in every dimension, "
            f"got shape {tuple(x.shape)}"
        )
