"""Checkpoints: tensors and plain types only, written atomically, read with weights_only=True."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from duetseg.atomic import atomic_path
from duetseg.errors import ConfigError

__all__ = ["save_checkpoint", "load_checkpoint", "check_compatible"]


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """Write ``state`` to ``path`` via a temporary file and an atomic rename."""
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint safely (``weights_only=True``: no pickled code is executed).

    Raises:
        ConfigError: missing or unreadable file, or content that is not plain data.
    """
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError...
        raise ConfigError(f"checkpoint {path} cannot be loaded safely: {exc}") from exc


def check_compatible(state: dict[str, Any], meta: dict[str, Any], path: Path) -> None:
    """Refuse a checkpoint made for other modalities, classes or method.

    Raises:
        ConfigError: naming the differing keys.
    """
    saved = state.get("meta", {})
    diffs = {k: (saved.get(k), v) for k, v in meta.items() if saved.get(k) != v}
    if diffs:
        detail = ", ".join(f"{k}: checkpoint {a!r} vs expected {b!r}"
                           for k, (a, b) in diffs.items())
        raise ConfigError(f"checkpoint {path} was made for another configuration ({detail})")
