"""Overlay figure: image, reference and prediction contours on one slice per case."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from duetseg.atomic import atomic_path  # noqa: E402

__all__ = ["save_overlay"]


def _best_slice(mask: np.ndarray) -> int:
    area = mask.reshape(-1, mask.shape[-1]).sum(0)
    return int(area.argmax()) if area.any() else mask.shape[-1] // 2


def save_overlay(images: dict[str, np.ndarray], reference: np.ndarray, prediction: np.ndarray,
                 path: Path, title: str = "") -> Path:
    """Save a PNG with one panel per modality, the reference and the prediction.

    Args:
        images: modality name -> (X, Y, Z) image.
        reference: (X, Y, Z) label map.
        prediction: (X, Y, Z) label map on the same grid.
        path: output PNG path (written atomically).
        title: figure title.

    Returns:
        ``path``.
    """
    z = _best_slice(reference > 0)
    panels = len(images) + 2
    fig, axes = plt.subplots(1, panels, figsize=(3.2 * panels, 3.4))
    base = next(iter(images.values()))[:, :, z].T
    for ax, (name, img) in zip(axes, images.items()):
        ax.imshow(img[:, :, z].T, cmap="gray", origin="lower")
        ax.set_title(name)
    for ax, (name, mask, color) in zip(
        axes[len(images):],
        [("reference", reference, "lime"), ("prediction", prediction, "red")],
    ):
        ax.imshow(base, cmap="gray", origin="lower")
        sl = mask[:, :, z].T > 0
        if sl.any():
            ax.contour(sl, levels=[0.5], colors=color, linewidths=1.2)
        ax.set_title(name)
    for ax in axes:
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return Path(path)
