"""Learning-rate schedules."""

from __future__ import annotations

__all__ = ["poly_lr"]


def poly_lr(base_lr: float, iteration: int, max_iterations: int, power: float = 0.9) -> float:
    """``base_lr * (1 - iteration / max_iterations) ** power`` (SSL4MIS / nnU-Net poly decay)."""
    return base_lr * (1.0 - iteration / max_iterations) ** power
