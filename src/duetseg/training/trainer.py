"""The training loop: method-agnostic, exactly resumable, atomic checkpoints, data-parallel.

:func:`train` runs named steps: :func:`_build` (run dir, seeds, method, optimizer),
:func:`_resume` (the state of ``checkpoints/last.pt``), :func:`_batches` (the data of the
remaining iterations), :func:`_step` (one iteration) and :func:`_validate_and_save` (rank
0's validation and checkpoints).
"""

from __future__ import annotations

import contextlib
import math
import random
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from duetseg.config import Config
from duetseg.data.cache import Cache, open_cache
from duetseg.data.loader import make_loader, resolve_num_workers
from duetseg.data.modalities import inversion_channels
from duetseg.data.sampling import TwoStreamBatches
from duetseg.errors import ConfigError, DuetsegError
from duetseg.methods import Method, build_method, fit_branches
from duetseg.precision import autocast_context, resolve_channels_last, to_memory_format
from duetseg.progress import progress_bar
from duetseg.run.checkpoint import (
    check_compatible,
    checkpoint_meta,
    load_checkpoint,
    save_checkpoint,
)
from duetseg.run.layout import RunDir
from duetseg.run.trained import method_context, resolve_device
from duetseg.training.distributed import (
    DistContext,
    any_rank,
    average,
    init_distributed,
    on_main,
    step_seed,
    sync_batchnorm,
    training_step,
)
from duetseg.training.logger import RunLogger
from duetseg.training.run import prepare_run_dir
from duetseg.training.schedule import poly_lr
from duetseg.training.validation import validate

__all__ = ["TrainResult", "train"]

_Step = Callable[[torch.Tensor, torch.Tensor, int], dict[str, torch.Tensor]]


@dataclass
class TrainResult:
    """Where a training run ended."""

    run_dir: Path
    iteration: int
    best_metric: float
    best_iteration: int


@dataclass
class _Session:
    """What one call of :func:`train` works with; ``start``, ``best``... advance."""

    cfg: Config
    ctx: DistContext
    paths: RunDir
    cache: Cache
    splits: dict[str, list[str]]
    method: Method
    optimizer: torch.optim.Optimizer
    channels_last: bool
    meta: dict[str, Any]
    start: int = 0
    best: float = -math.inf
    best_it: int = -1
    logger: RunLogger | None = None  # rank 0 only

    @property
    def device(self) -> torch.device:
        return self.ctx.device


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextlib.contextmanager
def _explain_batchnorm_error(cfg: Config) -> Iterator[None]:
    """Turn BatchNorm's one-value-per-channel error into a config error with the fixes."""
    try:
        yield
    except ValueError as exc:
        if "Expected more than 1 value per channel" not in str(exc):
            raise
        tc = cfg.train
        raise ConfigError(
            f"BatchNorm saw one value per channel ({exc}): the crop {list(tc.crop_size)} is "
            f"downsampled to 1 voxel at the bottleneck and a network got a batch of 1 "
            f"(train.batch_size={tc.batch_size}, train.labeled_bs={tc.labeled_bs}). Use "
            f"crops of at least 32 per axis, a batch of 2 or more per network, or "
            f"model.norm=instance"
        ) from exc


def _build(cfg: Config, run_dir: Path, resume: bool) -> _Session:
    """Join the process group, prepare the run dir (rank 0), seed, build method + optimizer."""
    ctx = init_distributed(resolve_device(cfg.train.device))
    run_dir = Path(run_dir)
    cache = open_cache(cfg.cache, cfg.modalities)
    cfg = cfg.model_copy(update={"model": fit_branches(cfg.method, cfg.model,
                                                       cache.modalities)})
    splits = on_main(ctx, lambda: prepare_run_dir(cfg, cache, run_dir, resume))
    tc = cfg.train
    _seed_everything(tc.seed)
    torch.backends.cudnn.benchmark = not tc.deterministic
    built = build_method(method_context(cfg, cache))
    built.check_training(tc)
    method = sync_batchnorm(ctx, built.to(ctx.device))
    channels_last = resolve_channels_last(tc.channels_last, ctx.device)
    method = to_memory_format(method, channels_last)
    optimizer = torch.optim.SGD(list(method.trainable_parameters()), lr=tc.lr,
                                momentum=tc.momentum, weight_decay=tc.weight_decay)
    return _Session(cfg, ctx, RunDir(run_dir), cache, splits, method, optimizer,
                    channels_last, checkpoint_meta(cfg, cache))


def _resume(s: _Session) -> None:
    """Restore weights, optimizer, position, best score and RNG from ``last.pt``, if any."""
    last = s.paths.last_checkpoint
    if not on_main(s.ctx, last.exists):
        return
    state = load_checkpoint(last, map_location=s.device)
    check_compatible(state, s.meta, last)
    s.method.load_state_dict(state["method"])
    s.optimizer.load_state_dict(state["optimizer"])
    s.start, s.best, s.best_it = (state["iteration"], state["best_metric"],
                                  state["best_iteration"])
    torch.set_rng_state(state["rng_cpu"])
    if s.device.type == "cuda" and "rng_cuda" in state:
        torch.cuda.set_rng_state(state["rng_cuda"].cpu())
    saved_world = state.get("world_size", 1)
    if saved_world != s.ctx.world_size and s.ctx.is_main:
        warnings.warn(f"resuming a run made with {saved_world} process(es) with "
                      f"{s.ctx.world_size}: the effective batch and the sampled crops change",
                      stacklevel=3)


def _batches(s: _Session, end: int) -> DataLoader:
    """The batches of iterations ``s.start .. end - 1`` of this rank."""
    tc = s.cfg.train
    labeled_bs = min(tc.labeled_bs, tc.batch_size)
    batch_size = tc.batch_size if s.method.uses_unlabeled else labeled_bs
    dataset = TwoStreamBatches(
        s.cache.root, s.splits["labeled"], s.splits["unlabeled"], tc.crop_size, batch_size,
        labeled_bs, tc.seed, flip=tc.flip, rot90=tc.rot90, foreground_prob=tc.foreground_prob,
        rank=s.ctx.rank, world_size=s.ctx.world_size, modality_dropout=tc.modality_dropout,
        intensity_augment=tc.intensity_augment, spatial_augment=tc.spatial_augment,
        channels=s.cache.channels,
        invert_channels=inversion_channels(tc.contrast_inversion, s.cache.modalities),
    )
    return make_loader(dataset, s.start, end,
                       resolve_num_workers(tc.num_workers, s.ctx.world_size), tc.seed)


def _step(s: _Session, step: _Step, batch: dict, iteration: int) -> tuple[dict[str, float], float]:
    """One optimisation step on ``batch``; returns the losses and the learning rate.

    Raises:
        DuetsegError: a non-finite loss on any rank (before the weights change).
    """
    tc = s.cfg.train
    lr = poly_lr(tc.lr, iteration, tc.max_iterations, tc.poly_power)
    for group in s.optimizer.param_groups:
        group["lr"] = lr
    if s.ctx.enabled:  # dropout/noise: a pure function of (seed, rank, iteration)
        torch.manual_seed(step_seed(tc.seed, s.ctx.rank, iteration))
    image = to_memory_format(batch["image"].to(s.device, non_blocking=True), s.channels_last)
    label = batch["label"].to(s.device, non_blocking=True)
    # None / all True: nothing dropped; the batch before dropout stays on the host
    s.method.set_present(batch.get("present"), batch.get("image_full"))
    with autocast_context(s.device, tc.amp), _explain_batchnorm_error(s.cfg):
        losses = step(image, label, iteration)
    if any_rank(s.ctx, not bool(torch.isfinite(losses["loss"]))):
        values = {k: round(float(v.detach()), 4) for k, v in losses.items()}
        where = f" (rank {s.ctx.rank}: {values})" if s.ctx.enabled else f" ({values})"
        raise DuetsegError(
            f"non-finite loss at iteration {iteration}{where}; the last good "
            f"checkpoint is kept in {s.paths.checkpoint_dir}. Lower train.lr or check the data."
        )
    s.optimizer.zero_grad(set_to_none=True)
    losses["loss"].backward()
    s.optimizer.step()
    s.method.after_step(iteration)
    return {k: float(v.detach()) for k, v in losses.items()}, lr


def _snapshot(s: _Session, iteration: int, best: float, best_it: int) -> dict[str, Any]:
    """The checkpoint state after ``iteration`` steps."""
    state = {"iteration": iteration, "method": s.method.state_dict(),
             "optimizer": s.optimizer.state_dict(), "best_metric": best,
             "best_iteration": best_it, "rng_cpu": torch.get_rng_state(), "meta": s.meta}
    if s.device.type == "cuda":
        state["rng_cuda"] = torch.cuda.get_rng_state()
    if s.ctx.enabled:
        state["world_size"] = s.ctx.world_size
    return state


def _validate_and_save(s: _Session, done: int, run_val: bool,
                       save_last: bool) -> tuple[float, int]:
    """Rank 0's file work after step ``done``; returns the updated (best, best_it)."""
    new_best, new_it = s.best, s.best_it
    if run_val:
        roi = s.cfg.inference.roi_size or s.cfg.train.crop_size
        scores = validate(s.method, s.cache, s.splits["val"], roi, s.cfg.inference, s.device)
        if scores:
            s.logger.log(done - 1, scores)
            current = scores[f"val_dice/{s.method.primary_output}"]
        else:
            current = float(done)  # no val split: the latest model is the best
        if current > new_best:
            new_best, new_it = current, done
            save_checkpoint(_snapshot(s, done, new_best, new_it), s.paths.best_checkpoint)
    if save_last:
        # Log first: a kill between the two leaves rows past last.pt, which a resume
        # drops; the other order would lose the rows up to the checkpoint.
        s.logger.flush()
        save_checkpoint(_snapshot(s, done, new_best, new_it), s.paths.last_checkpoint)
    return new_best, new_it


def train(cfg: Config, run_dir: Path, resume: bool = False, progress: bool = True,
          stop_at: int | None = None) -> TrainResult:
    """Train ``cfg.method`` on ``cfg.cache`` into ``run_dir``.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) every process calls this and they train one model
    data-parallel; see :mod:`duetseg.training.distributed` (only rank 0 writes files, the
    effective batch is ``train.batch_size`` x the number of processes).

    Args:
        cfg: the full configuration (``cfg.cache`` must be set).
        run_dir: output folder; ``config.yaml`` and ``splits.json`` are written there.
        resume: continue from ``checkpoints/last.pt`` exactly where it stopped.
        progress: show a progress bar.
        stop_at: stop after this iteration without a final checkpoint (as if killed);
            for tests and for training in chunks.

    Returns:
        The final iteration and the best validation score (on every rank).

    Raises:
        ConfigError: bad config, run dir in use without ``resume``, incompatible checkpoint.
        DuetsegError: a non-finite loss (the last good checkpoint is kept).
    """
    if cfg.cache is None:
        raise ConfigError("config has no cache: pass --cache or set `cache:` in the config")
    s = _build(cfg, run_dir, resume)
    if resume:
        _resume(s)
    if s.ctx.is_main:
        s.logger = RunLogger(s.paths.root, resume_from=s.start if resume else None)
    step = training_step(s.ctx, s.method)
    if cfg.train.compile:
        step = torch.compile(step)
    tc = cfg.train
    end = tc.max_iterations if stop_at is None else min(stop_at, tc.max_iterations)
    loader = _batches(s, end)
    s.method.train()
    bar = progress_bar(total=tc.max_iterations, initial=s.start,
                       disable=not (progress and s.ctx.is_main), desc="train",
                       dynamic_ncols=True)
    iteration = s.start
    try:
        for iteration, batch in enumerate(loader, start=s.start):
            values, lr = _step(s, step, batch, iteration)
            done = iteration + 1
            if done % tc.log_every == 0 or done == tc.max_iterations:
                logged = average(s.ctx, {**values, "lr": lr})
                if s.logger is not None:
                    s.logger.log(iteration, logged)
            bar.set_postfix({k: f"{v:.3f}" for k, v in values.items() if k != "unsup_weight"}
                            | {"lr": f"{lr:.4f}"}, refresh=False)
            bar.update(1)
            run_val = done % tc.val_every == 0 or done == tc.max_iterations
            save_last = done % tc.checkpoint_every == 0 or done == tc.max_iterations
            if run_val or save_last:
                s.best, s.best_it = on_main(
                    s.ctx, partial(_validate_and_save, s, done, run_val, save_last))
    finally:
        bar.close()
        if s.logger is not None:
            s.logger.close()
    return TrainResult(s.paths.root, iteration + 1 if end > s.start else s.start, s.best,
                       s.best_it)
