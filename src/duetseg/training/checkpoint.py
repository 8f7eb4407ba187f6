"""Checkpoints: tensors and plain types only, written atomically, read with weights_only=True."""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import torch

from duetseg.atomic import atomic_path
from duetseg.errors import ConfigError

__all__ = ["save_checkpoint", "load_checkpoint", "check_compatible"]

_ADDED_LATER = frozenset({"preprocessing"})


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """Write ``state`` to ``path`` via a temporary file and an atomic rename."""
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint safely (``weights_only=True``: no pickled code is executed).

    Raises:
        ConfigError: missing or unreadable file, content that is not plain data, or not a
            duetseg checkpoint.
    """
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's message suggests weights_only=False: keep only what the file holds
        found = re.search(r"WeightsUnpickler error: (.*?)(?: was not|$)", str(exc), re.M)
        detail = found.group(1) if found else str(exc).splitlines()[0]
        raise ConfigError(f"checkpoint {path} cannot be loaded safely: it holds more than "
                          f"tensors and plain data ({detail}); refused, as loading it could "
                          f"run code") from exc
    except Exception as exc:  # torch raises RuntimeError, EOFError... for broken files
        raise ConfigError(f"checkpoint {path} cannot be loaded safely: {exc}") from exc
    if not isinstance(state, dict) or not isinstance(state.get("method"), dict):
        raise ConfigError(f"checkpoint {path} is not a duetseg checkpoint (no 'method' weights)")
    return state


def check_compatible(state: dict[str, Any], meta: dict[str, Any], path: Path) -> None:
    """Refuse a checkpoint made for other modalities, classes, method or preprocessing.

    Keys in ``_ADDED_LATER`` are only compared when the checkpoint records them (older
    checkpoints predate them).

    Raises:
        ConfigError: naming the differing keys.
    """
    saved = state.get("meta", {})
    diffs = {k: (saved.get(k), v) for k, v in meta.items()
             if saved.get(k) != v and not (k in _ADDED_LATER and k not in saved)}
    if diffs:
        detail = ", ".join(f"{k}: checkpoint {a!r} vs expected {b!r}"
                           for k, (a, b) in diffs.items())
        raise ConfigError(f"checkpoint {path} was made for another configuration ({detail})")
