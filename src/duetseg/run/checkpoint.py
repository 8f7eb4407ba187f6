"""Checkpoints: tensors and plain types only, written atomically, read with weights_only=True.

A checkpoint records, under ``meta``, the identity of its model (:func:`checkpoint_meta`):
it is only loaded where that identity matches (:func:`check_compatible`).
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError

from duetseg.atomic import atomic_path
from duetseg.config import Config, ModelConfig
from duetseg.data.cache import Cache, fingerprint
from duetseg.errors import ConfigError
from duetseg.run.preprocessing import Preprocessing

__all__ = ["check_compatible", "checkpoint_meta", "load_checkpoint", "save_checkpoint"]

_ADDED_LATER = frozenset({"preprocessing"})


def checkpoint_meta(cfg: Config, cache: Cache | Preprocessing) -> dict[str, Any]:
    """Identity of a model: a checkpoint is only loaded where these match.

    ``preprocessing`` is the fingerprint of the cache's settings (spacing, normalisation,
    label mapping...): a cache re-prepared differently at the same path is refused.

    Args:
        cfg: the run's config.
        cache: the run's cache, or its :class:`~duetseg.run.preprocessing.Preprocessing`.

    Returns:
        Modalities, number of classes, method name, model settings and preprocessing.
    """
    return {"modalities": list(cache.modalities), "num_classes": cache.num_classes,
            "method": cfg.method.name, "model": cfg.model.model_dump(mode="json"),
            "preprocessing": fingerprint(cache.settings)}


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """Write ``state`` to ``path`` via a temporary file and an atomic rename.

    Args:
        state: tensors and plain data only (``load_checkpoint`` refuses anything else).
        path: the checkpoint file.
    """
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint safely (``weights_only=True``: no pickled code is executed).

    Args:
        path: the checkpoint file.
        map_location: where the tensors are put.

    Returns:
        The saved state (a dict with at least the ``method`` weights).

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


def _current_model_settings(saved: dict[str, Any]) -> dict[str, Any]:
    """``saved`` with its model settings read as today's ``ModelConfig`` would write them.

    Older checkpoints lack model keys added since (they were made with those keys'
    defaults) and hold dropped ones (``backbone: vnet``); settings that no longer validate
    are left as saved and then reported as a difference.
    """
    if not isinstance(saved.get("model"), dict):
        return saved
    try:
        model = ModelConfig.model_validate(saved["model"]).model_dump(mode="json")
    except ValidationError:
        return saved
    return {**saved, "model": model}


def check_compatible(state: dict[str, Any], meta: dict[str, Any], path: Path) -> None:
    """Refuse a checkpoint made for other modalities, classes, method or preprocessing.

    Keys in ``_ADDED_LATER`` are only compared when the checkpoint records them (older
    checkpoints predate them).

    Args:
        state: a loaded checkpoint.
        meta: the expected identity (:func:`checkpoint_meta`).
        path: the checkpoint's file, for the message.

    Raises:
        ConfigError: naming the differing keys.
    """
    saved = _current_model_settings(state.get("meta", {}))
    diffs = {k: (saved.get(k), v) for k, v in meta.items()
             if saved.get(k) != v and not (k in _ADDED_LATER and k not in saved)}
    if diffs:
        detail = ", ".join(f"{k}: checkpoint {a!r} vs expected {b!r}"
                           for k, (a, b) in diffs.items())
        raise ConfigError(f"checkpoint {path} was made for another configuration ({detail})")
