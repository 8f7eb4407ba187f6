"""A trained run as a predictor: its config, preprocessing and method with the weights loaded.

Prediction (``evaluate``, ``predict``, ``suggest``) starts here and never imports the
training loop; the trainer builds its method with the same :func:`method_context`. A run
reads its preprocessing from ``preprocessing.json`` (runs trained before that file existed:
from their cache), so predicting new cases does not need the cache; ``evaluate`` and
``suggest``, which read cached cases, open it on first use (:attr:`TrainedRun.cache`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from duetseg.config import Config
from duetseg.data.cache import Cache, open_cache
from duetseg.errors import ConfigError
from duetseg.inference import Predictor, predict_with_config
from duetseg.methods import Method, MethodContext, build_method
from duetseg.precision import resolve_channels_last, to_memory_format
from duetseg.run.checkpoint import check_compatible, checkpoint_meta, load_checkpoint
from duetseg.run.config import load_run_config
from duetseg.run.layout import RunDir
from duetseg.run.preprocessing import Preprocessing

__all__ = ["TrainedRun", "build_trained_method", "load_trained_run", "method_context",
           "predict_probabilities", "resolve_device", "run_preprocessing"]


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


def method_context(cfg: Config, cache: Cache | Preprocessing) -> MethodContext:
    """The context a method is built from (shared by training, evaluation and prediction).

    Args:
        cfg: the run's config.
        cache: the run's cache or its :class:`Preprocessing` (modalities and number of
            classes).

    Returns:
        The context for :func:`~duetseg.methods.build_method`.
    """
    return MethodContext(
        modalities=tuple(cache.modalities), num_classes=cache.num_classes, model=cfg.model,
        method=cfg.method, max_iterations=cfg.train.max_iterations,
    )


class TrainedRun:
    """A trained model ready to predict: config, preprocessing, method (eval mode), device.

    Made by :func:`load_trained_run` from a run directory, or by
    :func:`duetseg.export.load_model` from an exported model file.

    Attributes:
        run_dir: the run directory (None for an exported model file).
        cfg: its config.
        preprocessing: how cases are prepared for it (the cache's settings).
        method: the method, in eval mode on ``device``.
        device: where the method runs.
        checkpoint: the loaded checkpoint (or model) file.
        predictor: what sliding-window inference calls per window (default: the method's
            ``output_probabilities``; the ONNX Runtime predictor of
            :mod:`duetseg.export.onnx` for ``backend=onnxruntime``).
    """

    def __init__(self, run_dir: Path | None, cfg: Config, preprocessing: Preprocessing,
                 method: Method, device: torch.device, checkpoint: Path,
                 predictor: Predictor | None = None):
        self.run_dir = run_dir
        self.cfg = cfg
        self.preprocessing = preprocessing
        self.method = method
        self.device = device
        self.checkpoint = checkpoint
        self.predictor = predictor or method.output_probabilities
        self._cache: Cache | None = None

    @property
    def cache(self) -> Cache:
        """The run's cache (``cfg.cache``), opened on first use (evaluation, suggestions).

        Raises:
            ConfigError: no cache, or one re-prepared with other settings than the model's.
        """
        if self._cache is None:
            if self.cfg.cache is None:
                raise ConfigError(f"{self.checkpoint}: the config names no cache")
            cache = open_cache(self.cfg.cache, self.cfg.modalities)
            check_compatible({"meta": checkpoint_meta(self.cfg, self.preprocessing)},
                             checkpoint_meta(self.cfg, cache), self.checkpoint)
            self._cache = cache
        return self._cache

    @property
    def paths(self) -> RunDir:
        """The paths of the run directory."""
        if self.run_dir is None:
            raise ConfigError(f"{self.checkpoint} is an exported model, not a run directory")
        return RunDir(self.run_dir)

    @property
    def roi_size(self) -> tuple[int, int, int]:
        """Sliding-window size: ``inference.roi_size``, else the training crop size."""
        return tuple(self.cfg.inference.roi_size or self.cfg.train.crop_size)


def run_preprocessing(paths: RunDir, cfg: Config) -> Preprocessing:
    """A run's preprocessing: its ``preprocessing.json``, else (older runs) its cache's.

    Args:
        paths: the run directory.
        cfg: its config (``cache`` is opened for runs without ``preprocessing.json``).

    Returns:
        The preprocessing.

    Raises:
        ConfigError: an invalid file, or an older run whose cache is gone.
    """
    if paths.preprocessing_file.is_file():
        return Preprocessing.load(paths.preprocessing_file)
    if cfg.cache is None:
        raise ConfigError(f"{paths} has no {paths.preprocessing_file.name} and its config "
                          f"names no cache")
    return Preprocessing.from_cache(open_cache(cfg.cache, cfg.modalities))


def build_trained_method(cfg: Config, preprocessing: Preprocessing,
                         weights: dict[str, torch.Tensor], device: torch.device,
                         source: Path) -> Method:
    """A fresh method with ``weights`` loaded, in eval mode on ``device``.

    Args:
        cfg: the run's config.
        preprocessing: its preprocessing (modalities, number of classes).
        weights: the method's state dict.
        device: where it runs.
        source: the file the weights come from (for the message).

    Returns:
        The method.

    Raises:
        ConfigError: weights that do not fit the method the config builds.
    """
    method = build_method(method_context(cfg, preprocessing)).to(device)
    try:
        method.load_state_dict(weights)
    except RuntimeError as exc:
        detail = str(exc).splitlines()[0]
        raise ConfigError(f"{source}: the weights do not fit the configured model "
                          f"({detail})") from exc
    method = to_memory_format(method, resolve_channels_last(cfg.train.channels_last, device))
    method.eval()
    return method


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
    prep = run_preprocessing(paths, cfg)
    path = paths.find_checkpoint(checkpoint)
    dev = resolve_device(device)
    state = load_checkpoint(path, map_location=dev)
    check_compatible(state, checkpoint_meta(cfg, prep), path)
    method = build_trained_method(cfg, prep, state["method"], dev, path)
    return TrainedRun(paths.root, cfg, prep, method, dev, path)


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
    return predict_with_config(run.predictor, image, run.roi_size,
                               run.cfg.inference, run.device, tta_flip)
