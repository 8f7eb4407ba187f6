"""Training of the tiny runs the prediction and export tests use."""

from __future__ import annotations

import json
from pathlib import Path

from duetseg.config import load_config
from duetseg.data.cache import Cache
from duetseg.training import train


def train_tiny(cache: Cache, out: Path, **over) -> Path:
    """Train a tiny, barely trained run (2 iterations, base width 2) on ``cache`` into ``out``.

    Args:
        cache: the prepared cache.
        out: the run directory.
        **over: config overrides (dotted key -> value), e.g. ``**{"method.name": "ours"}``.

    Returns:
        ``out``.
    """
    base = {
        "cache": str(cache.root), "splits.labeled": 2, "splits.val": 1, "splits.test": 1,
        "model.base_width": 2, "model.dropout": 0.0, "train.crop_size": [16, 16, 16],
        "train.batch_size": 4, "train.labeled_bs": 2, "train.num_workers": 0,
        "train.max_iterations": 2, "train.val_every": 2, "train.checkpoint_every": 2,
        "inference.sw_batch_size": 8, "inference.overlap": 0.25,
    } | over
    cfg = load_config("demo", [f"{k}={json.dumps(v)}" for k, v in base.items()])
    train(cfg, out, progress=False)
    return out
