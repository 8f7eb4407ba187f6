"""The training loop: method-agnostic, exactly resumable, atomic checkpoints, data-parallel."""

from __future__ import annotations

import contextlib
import math
import random
import warnings
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch

from duetseg.config import Config
from duetseg.data.cache import Cache, fingerprint
from duetseg.data.sampling import TwoStreamBatches, make_loader, resolve_num_workers
from duetseg.errors import ConfigError, DuetsegError
from duetseg.methods import MethodContext, build_method
from duetseg.precision import autocast_context, resolve_channels_last, to_memory_format
from duetseg.progress import progress_bar
from duetseg.training.checkpoint import check_compatible, load_checkpoint, save_checkpoint
from duetseg.training.distributed import (
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

__all__ = ["TrainResult", "resolve_device", "method_context", "train"]


@dataclass
class TrainResult:
    """Where a training run ended."""

    run_dir: Path
    iteration: int
    best_metric: float
    best_iteration: int


def resolve_device(spec: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; anything else is passed to torch."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(spec)


def method_context(cfg: Config, cache: Cache) -> MethodContext:
    """The context a method is built from (shared by training, evaluation and prediction)."""
    return MethodContext(
        modalities=tuple(cache.modalities), num_classes=cache.num_classes, model=cfg.model,
        method=cfg.method, max_iterations=cfg.train.max_iterations,
    )


def checkpoint_meta(cfg: Config, cache: Cache) -> dict:
    """Identity of a model: a checkpoint is only loaded where these match.

    ``preprocessing`` is the fingerprint of the cache's settings (spacing, normalisation,
    label mapping...): a cache re-prepared differently at the same path is refused.
    """
    return {"modalities": list(cache.modalities), "num_classes": cache.num_classes,
            "method": cfg.method.name, "model": cfg.model.model_dump(mode="json"),
            "preprocessing": fingerprint(cache.settings)}


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextlib.contextmanager
def _explain_batchnorm_error(cfg: Config):
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
    ctx = init_distributed(resolve_device(cfg.train.device))
    run_dir = Path(run_dir)
    cache = Cache(cfg.cache)
    splits = on_main(ctx, lambda: prepare_run_dir(cfg, cache, run_dir, resume))
    tc = cfg.train
    device = ctx.device
    _seed_everything(tc.seed)
    torch.backends.cudnn.benchmark = not tc.deterministic

    method = sync_batchnorm(ctx, build_method(method_context(cfg, cache)).to(device))
    channels_last = resolve_channels_last(tc.channels_last, device)
    method = to_memory_format(method, channels_last)
    optimizer = torch.optim.SGD(list(method.trainable_parameters()), lr=tc.lr,
                                momentum=tc.momentum, weight_decay=tc.weight_decay)
    meta = checkpoint_meta(cfg, cache)
    ckpt_dir = run_dir / "checkpoints"
    last_path = ckpt_dir / "last.pt"
    start, best, best_it = 0, -math.inf, -1
    if resume and on_main(ctx, last_path.exists):
        state = load_checkpoint(last_path, map_location=device)
        check_compatible(state, meta, last_path)
        method.load_state_dict(state["method"])
        optimizer.load_state_dict(state["optimizer"])
        start, best, best_it = state["iteration"], state["best_metric"], state["best_iteration"]
        torch.set_rng_state(state["rng_cpu"])
        if device.type == "cuda" and "rng_cuda" in state:
            torch.cuda.set_rng_state(state["rng_cuda"].cpu())
        saved_world = state.get("world_size", 1)
        if saved_world != ctx.world_size and ctx.is_main:
            warnings.warn(f"resuming a run made with {saved_world} process(es) with "
                          f"{ctx.world_size}: the effective batch and the sampled crops change",
                          stacklevel=2)
    logger = RunLogger(run_dir, resume_from=start if resume else None) if ctx.is_main else None
    step = training_step(ctx, method)
    if tc.compile:
        step = torch.compile(step)

    def snapshot(iteration: int, best: float, best_it: int) -> dict:
        state = {"iteration": iteration, "method": method.state_dict(),
                 "optimizer": optimizer.state_dict(), "best_metric": best,
                 "best_iteration": best_it, "rng_cpu": torch.get_rng_state(), "meta": meta}
        if device.type == "cuda":
            state["rng_cuda"] = torch.cuda.get_rng_state()
        if ctx.enabled:
            state["world_size"] = ctx.world_size
        return state

    labeled_bs = min(tc.labeled_bs, tc.batch_size)
    batch_size = tc.batch_size if method.uses_unlabeled else labeled_bs
    dataset = TwoStreamBatches(
        cache.root, splits["labeled"], splits["unlabeled"], tc.crop_size, batch_size,
        labeled_bs, tc.seed, flip=tc.flip, rot90=tc.rot90, foreground_prob=tc.foreground_prob,
        rank=ctx.rank, world_size=ctx.world_size, modality_dropout=tc.modality_dropout,
    )
    end = tc.max_iterations if stop_at is None else min(stop_at, tc.max_iterations)
    loader = make_loader(dataset, start, end, resolve_num_workers(tc.num_workers, ctx.world_size),
                         tc.seed)
    roi = cfg.inference.roi_size or tc.crop_size

    def validate_and_save(done: int, run_val: bool, save_last: bool) -> tuple[float, int]:
        """Rank 0's file work after step ``done``; returns the updated (best, best_it)."""
        new_best, new_it = best, best_it
        if run_val:
            scores = validate(method, cache, splits["val"], roi, cfg.inference, device)
            if scores:
                logger.log(done - 1, scores)
                current = scores[f"val_dice/{method.primary_output}"]
            else:
                current = float(done)  # no val split: the latest model is the best
            if current > new_best:
                new_best, new_it = current, done
                save_checkpoint(snapshot(done, new_best, new_it), ckpt_dir / "best.pt")
        if save_last:
            # Log first: a kill between the two leaves rows past last.pt, which a resume
            # drops; the other order would lose the rows up to the checkpoint.
            logger.flush()
            save_checkpoint(snapshot(done, new_best, new_it), last_path)
        return new_best, new_it

    method.train()
    bar = progress_bar(total=tc.max_iterations, initial=start,
                       disable=not (progress and ctx.is_main), desc="train", dynamic_ncols=True)
    iteration = start
    try:
        for iteration, batch in enumerate(loader, start=start):
            lr = poly_lr(tc.lr, iteration, tc.max_iterations, tc.poly_power)
            for group in optimizer.param_groups:
                group["lr"] = lr
            if ctx.enabled:  # dropout/noise: a pure function of (seed, rank, iteration)
                torch.manual_seed(step_seed(tc.seed, ctx.rank, iteration))
            image = to_memory_format(batch["image"].to(device, non_blocking=True),
                                     channels_last)
            label = batch["label"].to(device, non_blocking=True)
            method.set_present(batch.get("present"))  # None / all True: nothing dropped
            with autocast_context(device, tc.amp), _explain_batchnorm_error(cfg):
                losses = step(image, label, iteration)
            if any_rank(ctx, not bool(torch.isfinite(losses["loss"]))):
                values = {k: round(float(v.detach()), 4) for k, v in losses.items()}
                where = f" (rank {ctx.rank}: {values})" if ctx.enabled else f" ({values})"
                raise DuetsegError(
                    f"non-finite loss at iteration {iteration}{where}; the last good "
                    f"checkpoint is kept in {ckpt_dir}. Lower train.lr or check the data."
                )
            optimizer.zero_grad(set_to_none=True)
            losses["loss"].backward()
            optimizer.step()
            method.after_step(iteration)
            done = iteration + 1
            values = {k: float(v.detach()) for k, v in losses.items()}
            if done % tc.log_every == 0 or done == tc.max_iterations:
                logged = average(ctx, {**values, "lr": lr})
                if logger is not None:
                    logger.log(iteration, logged)
            bar.set_postfix({k: f"{v:.3f}" for k, v in values.items() if k != "unsup_weight"}
                            | {"lr": f"{lr:.4f}"}, refresh=False)
            bar.update(1)
            run_val = done % tc.val_every == 0 or done == tc.max_iterations
            save_last = done % tc.checkpoint_every == 0 or done == tc.max_iterations
            if run_val or save_last:
                best, best_it = on_main(ctx, partial(validate_and_save, done, run_val, save_last))
    finally:
        bar.close()
        if logger is not None:
            logger.close()
    return TrainResult(run_dir, iteration + 1 if end > start else start, best, best_it)
