"""Numeric precision and memory layout of the training and inference passes.

On CUDA, bf16 autocast is the default (``amp: auto``): it halves activation memory and uses
the tensor cores, and unlike fp16 it needs no loss scaling because bf16 keeps float32's
exponent range. On CPU the float32 path is kept exact (``auto`` resolves to ``none``), so
CPU runs stay bitwise reproducible.
"""

from __future__ import annotations

import contextlib
from typing import Literal

import torch

__all__ = ["AmpMode", "resolve_amp", "autocast_context", "resolve_channels_last",
           "to_memory_format"]

AmpMode = Literal["auto", "none", "bf16"]


def resolve_amp(mode: str, device: torch.device) -> str:
    """Resolve ``auto`` to ``bf16`` on a CUDA device that supports it, else ``none``.

    Args:
        mode: ``auto``, ``none`` or ``bf16``.
        device: where the network runs.

    Returns:
        ``none`` or ``bf16``.

    Raises:
        ValueError: an unknown mode.
    """
    if mode not in ("auto", "none", "bf16"):
        raise ValueError(f"unknown amp mode {mode!r} (auto | none | bf16)")
    if device.type != "cuda":
        return "none"
    if mode == "auto":
        return "bf16" if torch.cuda.is_bf16_supported() else "none"
    return mode


def autocast_context(device: torch.device, mode: str):
    """Autocast for ``mode`` (after :func:`resolve_amp`); a no-op for ``none`` or on CPU."""
    if resolve_amp(mode, device) == "bf16":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def resolve_channels_last(setting: bool | str, device: torch.device) -> bool:
    """Resolve ``auto`` to on for CUDA and CPU, off elsewhere.

    cuDNN's 3D convolution kernels work channels-last: with NCDHW tensors it transposes
    every activation in and out (the nchwToNhwc kernels in the GPU profile). Channels-last
    3D made the bf16 DuetNet step at 96³ 2.6x faster on an H200; on 2 CPU cores (oneDNN,
    float32) it made the cpu_small training step about 1.2x and sliding-window inference
    1.4x faster (BENCHMARKS.md, "Speed on CPU" and "Speed on GPU"). Only the strides change:
    the values agree to float rounding, and a run stays bitwise reproducible on one machine.

    Raises:
        ValueError: an unknown setting.
    """
    if setting == "auto":
        return device.type in ("cuda", "cpu")
    if not isinstance(setting, bool):
        raise ValueError(f"unknown channels_last setting {setting!r} (auto | true | false)")
    return setting


def to_memory_format(module_or_tensor, channels_last: bool):
    """Convert a module or a 5D tensor to ``channels_last_3d`` when asked (else unchanged)."""
    if not channels_last:
        return module_or_tensor
    if isinstance(module_or_tensor, torch.Tensor) and module_or_tensor.dim() != 5:
        return module_or_tensor
    return module_or_tensor.to(memory_format=torch.channels_last_3d)
