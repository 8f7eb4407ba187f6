"""Training: the loop, schedules, checkpoints and logs."""

from duetseg.training.trainer import TrainResult, method_context, resolve_device, train

__all__ = ["TrainResult", "method_context", "resolve_device", "train"]
