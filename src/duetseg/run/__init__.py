"""A run directory and what is read from it, below training, workflows and reporting.

* :mod:`duetseg.run.layout`: :class:`RunDir` / :class:`EvalDir`, every path of a run
  (standard library only);
* :mod:`duetseg.run.config`: :func:`load_run_config`, the saved ``config.yaml`` (no torch);
* :mod:`duetseg.run.checkpoint`: writing, loading and checking checkpoints (torch);
* :mod:`duetseg.run.trained`: :func:`load_trained_run`, a trained run as a predictor (torch).

The names below are imported from their module on first access, so ``import duetseg.run``
and ``from duetseg.run import RunDir`` do not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CHECKPOINT_NAMES": "layout",
    "EvalDir": "layout",
    "RunDir": "layout",
    "load_run_config": "config",
    "check_compatible": "checkpoint",
    "checkpoint_meta": "checkpoint",
    "load_checkpoint": "checkpoint",
    "save_checkpoint": "checkpoint",
    "TrainedRun": "trained",
    "load_trained_run": "trained",
    "method_context": "trained",
    "predict_probabilities": "trained",
    "resolve_device": "trained",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Import ``name`` from its submodule on first access.

    Raises:
        AttributeError: ``name`` is not exported.
    """
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
