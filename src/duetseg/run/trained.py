"""A trained run as a predictor: its config, cache and method with the weights loaded.

Prediction (``evaluate``, ``predict``, ``suggest``) starts here and never imports the
training loop; the trainer builds its method with the same :func:`method_context`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from duetseg.config import Config
from duetseg.data.cache import Cache
from duetseg.inference import predict_with_config
from duetseg.methods import Method, MethodContext, build_method
from duetseg.precision import resolve_channels_last, to_memory_format
from duetseg.run.checkpoint import check_compatible, checkpoint_meta, load_checkpoint
from duetseg.run.config import load_run_config
from duetseg.run.layout import RunDir

__all__ = ["TrainedRun", "load_trained_run", "method_context", "predict_probabilities",
           "resolve_device"]


def resolve_device(spec: str) -> torch.device:
    """The device a setting names.

    Args:
        spec: ``auto`` (CUDA when available, else CPU) or anything torch accepts.

    Returns:
        The device.
    """
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(spec)


def method_context(cfg: Config, cache: Cache) -> MethodContext:
    """The context a method is built from (shared by training, evaluation and prediction).

    Args:
        cfg: the run's config.
        cache: the run's cache (modalities and number of classes).

    Returns:
        The context for :func:`~duetseg.methods.build_method`.
    """
    return MethodContext(
        modalities=tuple(cache.modalities), num_classes=cache.num_classes, model=cfg.model,
        method=cfg.method, max_iterations=cfg.train.max_iterations,
    )


class TrainedRun:
    """A run's config, cache, method (weights loaded, eval mode) and device.

    Attributes:
        run_dir: the run directory.
        cfg: its config.
        cache: its cache.
        method: the method, in eval mode on ``device``.
        device: where the method runs.
        checkpoint: the loaded checkpoint file.
    """

    def __init__(self, run_dir: Path, cfg: Config, cache: Cache, method: Method,
                 device: torch.device, checkpoint: Path):
        self.run_dir = run_dir
        self.cfg = cfg
        self.cache = cache
        self.method = method
        self.device = device
        self.checkpoint = checkpoint

    @property
    def paths(self) -> RunDir:
        """The paths of the run directory."""
        return RunDir(self.run_dir)

    @property
    def roi_size(self) -> tuple[int, int, int]:
        """Sliding-window size: ``inference.roi_size``, else the training crop size."""
        return tuple(self.cfg.inference.roi_size or self.cfg.train.crop_size)


def load_trained_run(run_dir: str | os.PathLike, checkpoint: str = "best",
                     device: str = "auto") -> TrainedRun:
    """Load ``checkpoints/<checkpoint>.pt`` of ``run_dir`` into a fresh method.

    Args:
        run_dir: a training run directory.
        checkpoint: "best" (falls back to "last" when there is no best) or "last".
        device: "auto", "cpu", "cuda", ...

    Returns:
        The run, ready to predict.

    Raises:
        ConfigError: not a run dir, missing checkpoint, or one made for another config.
    """
    paths = RunDir(run_dir)
    cfg = load_run_config(paths)
    cache = Cache(cfg.cache)
    path = paths.find_checkpoint(checkpoint)
    dev = resolve_device(device)
    state = load_checkpoint(path, map_location=dev)
    check_compatible(state, checkpoint_meta(cfg, cache), path)
    method = build_method(method_context(cfg, cache)).to(dev)
    method.load_state_dict(state["method"])
    method = to_memory_format(method, resolve_channels_last(cfg.train.channels_last, dev))
    method.eval()
    return TrainedRun(paths.root, cfg, cache, method, dev, path)


def predict_probabilities(run: TrainedRun, image: np.ndarray,
                          tta_flip: bool | None = None) -> dict[str, np.ndarray]:
    """Probabilities of every output of ``run`` for a cached image (its inference settings).

    Args:
        run: the trained run.
        image: (M, X, Y, Z) image in the cache's geometry.
        tta_flip: flip test-time augmentation; None: the run's ``inference`` setting.

    Returns:
        Output name -> (C, X, Y, Z) probabilities.
    """
    return predict_with_config(run.method.output_probabilities, image, run.roi_size,
                               run.cfg.inference, run.device, tta_flip)
