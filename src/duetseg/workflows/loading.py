"""Rebuild a trained method from a run directory."""

from __future__ import annotations

from pathlib import Path

import torch

from duetseg.config import Config
from duetseg.data.cache import Cache
from duetseg.methods import Method, build_method
from duetseg.precision import resolve_channels_last, to_memory_format
from duetseg.training.checkpoint import check_compatible, load_checkpoint
from duetseg.training.run import load_run_config
from duetseg.training.trainer import checkpoint_meta, method_context, resolve_device

__all__ = ["TrainedRun", "load_trained_run"]


class TrainedRun:
    """A run's config, cache, method (weights loaded, eval mode) and device."""

    def __init__(self, run_dir: Path, cfg: Config, cache: Cache, method: Method,
                 device: torch.device, checkpoint: Path):
        self.run_dir = run_dir
        self.cfg = cfg
        self.cache = cache
        self.method = method
        self.device = device
        self.checkpoint = checkpoint

    @property
    def roi_size(self) -> tuple[int, int, int]:
        return tuple(self.cfg.inference.roi_size or self.cfg.train.crop_size)


def load_trained_run(run_dir: Path, checkpoint: str = "best", device: str = "auto") -> TrainedRun:
    """Load ``checkpoints/<checkpoint>.pt`` of ``run_dir`` into a fresh method.

    Args:
        run_dir: a training run directory.
        checkpoint: "best" (falls back to "last" when there is no best) or "last".
        device: "auto", "cpu", "cuda", ...

    Raises:
        ConfigError: not a run dir, missing checkpoint, or one made for another config.
    """
    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    cache = Cache(cfg.cache)
    path = run_dir / "checkpoints" / f"{checkpoint}.pt"
    if checkpoint == "best" and not path.exists():
        path = run_dir / "checkpoints" / "last.pt"
    dev = resolve_device(device)
    state = load_checkpoint(path, map_location=dev)
    check_compatible(state, checkpoint_meta(cfg, cache), path)
    method = build_method(method_context(cfg, cache)).to(dev)
    method.load_state_dict(state["method"])
    method = to_memory_format(method, resolve_channels_last(cfg.train.channels_last, dev))
    method.eval()
    return TrainedRun(run_dir, cfg, cache, method, dev, path)
