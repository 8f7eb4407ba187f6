"""The layout of a run directory: every file name a run reads or writes, in one place.

::

    <run>/
        config.yaml                     resolved configuration       RunDir.config_file
        splits.json                     case lists                   RunDir.splits_file
        preprocessing.json              the cache's settings         RunDir.preprocessing_file
        log.csv                         training log                 RunDir.log_file
        tensorboard/                    TensorBoard events           RunDir.tensorboard_dir
        checkpoints/                                                 RunDir.checkpoint_dir
            last.pt                     where training resumes       RunDir.last_checkpoint
            best.pt                     best validation score        RunDir.best_checkpoint
        .tmp-*, checkpoints/.tmp-*      left by a killed write       RunDir.remove_temporaries
        eval/<split>/                   ``duetseg evaluate``         RunDir.eval(split)
            metrics.csv                 per case, output, class      EvalDir.metrics_file
            summary.json                means and settings           EvalDir.summary_file
            predictions/<case>.nii.gz   primary output's masks       EvalDir.prediction(case)
            predictions/<output>/<case>.nii.gz  other outputs' masks
            missing_inputs.json         Dice, a modality missing     RunDir.missing_inputs_file
        suggestions.csv                 ``duetseg suggest``          RunDir.suggestions_file

This module imports nothing but the standard library (and :mod:`duetseg.atomic`), so any
stage, reporting included, can use it without importing torch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from duetseg.atomic import remove_temporaries

__all__ = ["CHECKPOINT_NAMES", "EvalDir", "RunDir"]

CHECKPOINT_NAMES = ("best", "last")


@dataclass(frozen=True)
class _Folder:
    """A folder whose ``str()`` / ``os.fspath()`` is the folder itself (a path stand-in)."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    def __fspath__(self) -> str:
        return os.fspath(self.root)

    def __str__(self) -> str:
        return str(self.root)


@dataclass(frozen=True)
class EvalDir(_Folder):
    """An evaluation folder: ``eval/<split>/`` of a run, or ``duetseg evaluate-folder --out``.

    Attributes:
        root: the folder.
    """

    @property
    def metrics_file(self) -> Path:
        """``metrics.csv``: one row per case, output and class."""
        return self.root / "metrics.csv"

    @property
    def summary_file(self) -> Path:
        """``summary.json``: the mean metrics and the evaluation settings."""
        return self.root / "summary.json"

    @property
    def predictions_dir(self) -> Path:
        """``predictions/``: the primary output's masks (other outputs in sub-folders)."""
        return self.root / "predictions"

    def prediction(self, case: str, output: str | None = None) -> Path:
        """The mask of ``case``.

        Args:
            case: case ID.
            output: None for the primary output, else the name of another output.

        Returns:
            ``predictions/<case>.nii.gz`` or ``predictions/<output>/<case>.nii.gz``.
        """
        folder = self.predictions_dir if output is None else self.predictions_dir / output
        return folder / f"{case}.nii.gz"


@dataclass(frozen=True)
class RunDir(_Folder):
    """The paths of a training run directory (see the module docstring for the layout).

    ``RunDir(path)`` only names paths: nothing is read or created. ``str()`` and
    ``os.fspath()`` give the folder itself, so a ``RunDir`` can stand where a path is taken.

    Attributes:
        root: the run directory.
    """

    @property
    def config_file(self) -> Path:
        """``config.yaml``: the resolved configuration of the run."""
        return self.root / "config.yaml"

    @property
    def splits_file(self) -> Path:
        """``splits.json``: train / val / test / labeled / unlabeled case lists."""
        return self.root / "splits.json"

    @property
    def preprocessing_file(self) -> Path:
        """``preprocessing.json``: the cache's settings and identity, what prediction needs."""
        return self.root / "preprocessing.json"

    @property
    def log_file(self) -> Path:
        """``log.csv``: one row per logged training iteration."""
        return self.root / "log.csv"

    @property
    def tensorboard_dir(self) -> Path:
        """``tensorboard/``: TensorBoard event files."""
        return self.root / "tensorboard"

    @property
    def checkpoint_dir(self) -> Path:
        """``checkpoints/``."""
        return self.root / "checkpoints"

    @property
    def last_checkpoint(self) -> Path:
        """``checkpoints/last.pt``: the state training resumes from."""
        return self.checkpoint("last")

    @property
    def best_checkpoint(self) -> Path:
        """``checkpoints/best.pt``: the model with the best validation score."""
        return self.checkpoint("best")

    @property
    def suggestions_file(self) -> Path:
        """``suggestions.csv``: the default output of ``duetseg suggest``."""
        return self.root / "suggestions.csv"

    @property
    def missing_inputs_file(self) -> Path:
        """``eval/missing_inputs.json``: per-case test Dice with each modality missing
        (:mod:`duetseg.analysis.missing`)."""
        return self.root / "eval" / "missing_inputs.json"

    @property
    def resumable(self) -> bool:
        """True when the folder holds a training run (``checkpoints/last.pt`` exists)."""
        return self.last_checkpoint.exists()

    def checkpoint(self, name: str) -> Path:
        """``checkpoints/<name>.pt``.

        Args:
            name: ``"best"`` or ``"last"``.

        Returns:
            The checkpoint's path (which may not exist).
        """
        return self.checkpoint_dir / f"{name}.pt"

    def find_checkpoint(self, name: str) -> Path:
        """The checkpoint to load for ``name``: ``best`` falls back to ``last`` when missing.

        Args:
            name: ``"best"`` or ``"last"``.

        Returns:
            ``checkpoints/<name>.pt``, or ``checkpoints/last.pt`` for a missing ``best``.
        """
        path = self.checkpoint(name)
        if name == "best" and not path.exists():
            return self.last_checkpoint
        return path

    def eval(self, split: str) -> EvalDir:
        """``eval/<split>/``: what ``duetseg evaluate`` writes for ``split``."""
        return EvalDir(self.root / "eval" / split)

    def is_evaluated(self, split: str) -> bool:
        """True when ``split`` was evaluated to the end (its ``summary.json`` exists)."""
        return self.eval(split).summary_file.exists()

    def remove_temporaries(self) -> None:
        """Delete the ``.tmp-*`` files a killed atomic write left in the run or its checkpoints."""
        for folder in (self.root, self.checkpoint_dir):
            remove_temporaries(folder)
