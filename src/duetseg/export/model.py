"""``duetseg export`` and loading its model file as a predictor.

:func:`export_model` packs a run's checkpoint, config and preprocessing into one file
(:mod:`duetseg.export.package`), optionally with an ONNX graph (:mod:`duetseg.export.onnx`).
:func:`load_model` opens a run directory or such a file as a
:class:`~duetseg.run.trained.TrainedRun`, which every prediction path takes, so a model file
predicts exactly as the run it came from, with no cache and no run directory.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import ValidationError

from duetseg.config import Config
from duetseg.errors import ConfigError, ModelFileError
from duetseg.export.onnx import OrtPredictor, export_onnx, require_onnxruntime
from duetseg.export.package import ONNX_MEMBER, read_package, weights_to_npz, write_package
from duetseg.run.checkpoint import check_compatible, checkpoint_meta, load_checkpoint
from duetseg.run.config import load_run_config
from duetseg.run.layout import RunDir
from duetseg.run.preprocessing import Preprocessing
from duetseg.run.trained import (
    TrainedRun,
    build_trained_method,
    load_trained_run,
    resolve_device,
    run_preprocessing,
)

__all__ = ["BACKENDS", "export_model", "load_model", "load_model_file", "resolve_backend"]

BACKENDS = ("auto", "torch", "onnxruntime")


def _onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_backend(backend: str, device: torch.device, has_graph: bool) -> str:
    """The backend ``auto`` means: ``onnxruntime`` on the CPU when the model file holds its
    ONNX graph and onnxruntime is installed (faster at the same masks:
    ``benchmarks/onnx_speed.py``), else ``torch``; other values are returned as they are.

    Raises:
        ConfigError: an unknown backend.
    """
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r} ({' | '.join(BACKENDS)})")
    if backend != "auto":
        return backend
    cpu = device.type == "cpu"
    return "onnxruntime" if cpu and has_graph and _onnxruntime_available() else "torch"


def _json(data: Any) -> bytes:
    return (json.dumps(data, indent=2) + "\n").encode()


def export_model(run_dir: str | os.PathLike, out: str | os.PathLike, checkpoint: str = "best",
                 onnx: bool = False) -> Path:
    """Write a run's model to one file that predicts without the run or its cache.

    Args:
        run_dir: a trained run directory.
        out: the model file (written atomically: nothing is left on a failure).
        checkpoint: "best" (falls back to "last" when there is no best) or "last".
        onnx: also store the network as an ONNX graph (for ``--backend onnxruntime``).

    Returns:
        ``out``.

    Raises:
        ConfigError: not a run directory, a missing or incompatible checkpoint, or an older
            run whose cache is gone (its preprocessing is read from it).
    """
    paths = RunDir(run_dir)
    cfg = load_run_config(paths)
    prep = run_preprocessing(paths, cfg)
    path = paths.find_checkpoint(checkpoint)
    state = load_checkpoint(path, map_location="cpu")
    meta = checkpoint_meta(cfg, prep)
    check_compatible(state, meta, path)
    weights = state["method"]
    bad = [k for k, v in weights.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise ConfigError(f"checkpoint {path}: entries that are not tensors: {bad}")
    method = build_trained_method(cfg, prep, weights, torch.device("cpu"), path)
    roi = list(cfg.inference.roi_size or cfg.train.crop_size)
    info: dict[str, Any] = {
        "method": cfg.method.name, "checkpoint": path.stem,
        "iteration": state.get("iteration"), "meta": meta,
        "primary_output": method.primary_output,
        "outputs": [spec.to_dict() for spec in method.outputs()],
        "roi_size": roi, "onnx": None,
    }
    members = {
        "config.json": _json(cfg.model_dump(mode="json")),
        "preprocessing.json": _json(prep.to_dict()),
        "weights.npz": weights_to_npz({k: v.detach().cpu().numpy() for k, v in weights.items()}),
    }
    if onnx:
        graph, names = export_onnx(method, len(prep.modalities), roi)
        members[ONNX_MEMBER] = graph
        info["onnx"] = {"input": "image", "outputs": names}
    members["model.json"] = _json(info)
    return write_package(out, members)


def load_model_file(path: str | os.PathLike, device: str = "auto",
                    backend: str = "auto") -> TrainedRun:
    """Open a model file from :func:`export_model` as a predictor.

    Args:
        path: the model file.
        device: "auto", "cpu", "cuda", ... (``onnxruntime`` runs on the CPU).
        backend: ``torch``, ``onnxruntime`` (needs the file's ONNX graph) or ``auto``
            (:func:`resolve_backend`).

    Returns:
        The model, ready to predict (``run_dir`` None).

    Raises:
        ModelFileError: a file that fails verification (see
            :func:`~duetseg.export.package.read_package`), invalid contents, weights that
            do not fit the model, or ``onnxruntime`` asked of a file without an ONNX graph
            or without onnxruntime installed.
    """
    pkg = read_package(path)
    backend = resolve_backend(backend, resolve_device(device), pkg.has(ONNX_MEMBER))
    if backend == "onnxruntime":
        if not pkg.has(ONNX_MEMBER):
            raise pkg.error(f"has no ONNX graph ({ONNX_MEMBER}), which --backend onnxruntime "
                            f"needs: export it again with --onnx")
        require_onnxruntime(pkg.path)
    try:
        cfg = Config.model_validate(pkg.json("config.json"))
        prep = Preprocessing.from_dict(pkg.json("preprocessing.json"), pkg.path)
        info = pkg.json("model.json")
        check_compatible({"meta": info["meta"]}, checkpoint_meta(cfg, prep), pkg.path)
        dev = torch.device("cpu") if backend == "onnxruntime" else resolve_device(device)
        weights = {k: torch.from_numpy(np.array(v)) for k, v in pkg.weights().items()}
        method = build_trained_method(cfg, prep, weights, dev, pkg.path)
    except ModelFileError:
        raise
    except (ConfigError, ValidationError, KeyError, TypeError) as exc:
        raise pkg.error(f"invalid contents ({str(exc).splitlines()[0]})") from exc
    predictor = None
    if backend == "onnxruntime":
        names = (info.get("onnx") or {}).get("outputs") or list(method.describe_outputs())
        predictor = OrtPredictor(pkg.members[ONNX_MEMBER], names, pkg.path)
    return TrainedRun(None, cfg, prep, method, dev, pkg.path, predictor)


def load_model(source: str | os.PathLike, checkpoint: str = "best", device: str = "auto",
               backend: str = "auto") -> TrainedRun:
    """A run directory or a model file, ready to predict.

    Args:
        source: a trained run directory, or a model file from :func:`export_model`.
        checkpoint: "best" or "last" (a run directory only).
        device: "auto", "cpu", "cuda", ...
        backend: ``torch``, ``onnxruntime`` (a model file exported with ``onnx=True``) or
            ``auto`` (a run directory: torch; a model file: :func:`resolve_backend`).

    Returns:
        The model.

    Raises:
        ConfigError: see :func:`~duetseg.run.trained.load_trained_run`; ``onnxruntime``
            asked of a run directory.
        ModelFileError: see :func:`load_model_file`.
    """
    if Path(source).is_dir():
        if backend not in ("auto", "torch"):
            raise ConfigError(f"--backend {backend} needs a model file from 'duetseg export "
                              f"--onnx', not the run directory {source}")
        return load_trained_run(source, checkpoint, device)
    return load_model_file(source, device, backend)
