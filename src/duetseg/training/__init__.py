"""Training: the loop, schedules, logs and the set-up of a new or resumed run.

A run's layout, checkpoints and the loading of a trained run live in :mod:`duetseg.run`.
"""

from duetseg.training.trainer import TrainResult, train

__all__ = ["TrainResult", "train"]
