"""A run directory and what is read from it, below training, workflows and reporting.

* :mod:`duetseg.run.layout`: :class:`RunDir` / :class:`EvalDir`, every path of a run
  (standard library only);
* :mod:`duetseg.run.config`: :func:`load_run_config`, the saved ``config.yaml`` (no torch);
* :mod:`duetseg.run.preprocessing`: :class:`Preprocessing`, what prediction needs of the
  cache (``preprocessing.json``; no torch);
* :mod:`duetseg.run.checkpoint`: writing, loading and checking checkpoints (torch);
* :mod:`duetseg.run.trained`: :func:`load_trained_run`, a trained run as a predictor (torch).

The names below are imported from their module on first access, so ``import duetseg.run``
and ``from duetseg.run import RunDir`` do not import torch.
"""

from __future__ import annotations

from duetseg._lazy import lazy_exports

_EXPORTS = {
    "CHECKPOINT_NAMES": "layout",
    "EvalDir": "layout",
    "RunDir": "layout",
    "load_run_config": "config",
    "check_compatible": "checkpoint",
    "checkpoint_meta": "checkpoint",
    "load_checkpoint": "checkpoint",
    "save_checkpoint": "checkpoint",
    "Preprocessing": "preprocessing",
    "TrainedRun": "trained",
    "load_trained_run": "trained",
    "method_context": "trained",
    "predict_probabilities": "trained",
    "resolve_device": "trained",
}

__all__ = list(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
