"""The training loop: method-agnostic, exactly resumable, atomic checkpoints."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from duetseg.config import Config
from duetseg.data.cache import Cache
from duetseg.data.sampling import TwoStreamBatches, make_loader
from duetseg.errors import ConfigError, DuetsegError
from duetseg.methods import MethodContext, build_method
from duetseg.training.checkpoint import check_compatible, load_checkpoint, save_checkpoint
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
    """Identity of a model: a checkpoint is only loaded where these match."""
    return {"modalities": list(cache.modalities), "num_classes": cache.num_classes,
            "method": cfg.method.name, "model": cfg.model.model_dump(mode="json")}


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def train(cfg: Config, run_dir: Path, resume: bool = False, progress: bool = True,
          stop_at: int | None = None) -> TrainResult:
    """Train ``cfg.method`` on ``cfg.cache`` into ``run_dir``.

    Args:
        cfg: the full configuration (``cfg.cache`` must be set).
        run_dir: output folder; ``config.yaml`` and ``splits.json`` are written there.
        resume: continue from ``checkpoints/last.pt`` exactly where it stopped.
        progress: show a progress bar.
        stop_at: stop after this iteration without a final checkpoint (as if killed);
            for tests and for training in chunks.

    Returns:
        The final iteration and the best validation score.

    Raises:
        ConfigError: bad config, run dir in use without ``resume``, incompatible checkpoint.
        DuetsegError: a non-finite loss (the last good checkpoint is kept).
    """
    if cfg.cache is None:
        raise ConfigError("config has no cache: pass --cache or set `cache:` in the config")
    cache = Cache(cfg.cache)
    run_dir = Path(run_dir)
    splits = prepare_run_dir(cfg, cache, run_dir, resume)
    tc = cfg.train
    device = resolve_device(tc.device)
    _seed_everything(tc.seed)
    torch.backends.cudnn.benchmark = not tc.deterministic

    method = build_method(method_context(cfg, cache)).to(device)
    optimizer = torch.optim.SGD(list(method.trainable_parameters()), lr=tc.lr,
                                momentum=tc.momentum, weight_decay=tc.weight_decay)
    meta = checkpoint_meta(cfg, cache)
    ckpt_dir = run_dir / "checkpoints"
    start, best, best_it = 0, -math.inf, -1
    if resume and (ckpt_dir / "last.pt").exists():
        state = load_checkpoint(ckpt_dir / "last.pt", map_location=device)
        check_compatible(state, meta, ckpt_dir / "last.pt")
        method.load_state_dict(state["method"])
        optimizer.load_state_dict(state["optimizer"])
        start, best, best_it = state["iteration"], state["best_metric"], state["best_iteration"]
        torch.set_rng_state(state["rng_cpu"])
        if device.type == "cuda" and "rng_cuda" in state:
            torch.cuda.set_rng_state(state["rng_cuda"].cpu())
    logger = RunLogger(run_dir, resume_from=start if resume else None)

    def snapshot(iteration: int) -> dict:
        state = {"iteration": iteration, "method": method.state_dict(),
                 "optimizer": optimizer.state_dict(), "best_metric": best,
                 "best_iteration": best_it, "rng_cpu": torch.get_rng_state(), "meta": meta}
        if device.type == "cuda":
            state["rng_cuda"] = torch.cuda.get_rng_state()
        return state

    labeled_bs = min(tc.labeled_bs, tc.batch_size)
    batch_size = tc.batch_size if method.uses_unlabeled else labeled_bs
    dataset = TwoStreamBatches(
        cache.root, splits["labeled"], splits["unlabeled"], tc.crop_size, batch_size,
        labeled_bs, tc.seed, flip=tc.flip, rot90=tc.rot90, foreground_prob=tc.foreground_prob,
    )
    end = tc.max_iterations if stop_at is None else min(stop_at, tc.max_iterations)
    loader = make_loader(dataset, start, end, tc.num_workers, tc.seed)
    roi = cfg.inference.roi_size or tc.crop_size
    method.train()
    bar = tqdm(total=tc.max_iterations, initial=start, disable=not progress, desc="train",
               dynamic_ncols=True)
    iteration = start
    for iteration, batch in enumerate(loader, start=start):
        lr = poly_lr(tc.lr, iteration, tc.max_iterations, tc.poly_power)
        for group in optimizer.param_groups:
            group["lr"] = lr
        image = batch["image"].to(device, non_blocking=True)
        label = batch["label"].to(device, non_blocking=True)
        losses = method.training_losses(image, label, iteration)
        if not torch.isfinite(losses["loss"]):
            logger.close()
            values = {k: round(float(v.detach()), 4) for k, v in losses.items()}
            raise DuetsegError(
                f"non-finite loss at iteration {iteration} ({values}); the last good checkpoint "
                f"is kept in {ckpt_dir}. Lower train.lr or check the data."
            )
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        optimizer.step()
        method.after_step(iteration)
        done = iteration + 1
        values = {k: float(v.detach()) for k, v in losses.items()}
        if done % tc.log_every == 0 or done == tc.max_iterations:
            logger.log(iteration, {**values, "lr": lr})
        bar.set_postfix({k: f"{v:.3f}" for k, v in values.items() if k != "unsup_weight"}
                        | {"lr": f"{lr:.4f}"}, refresh=False)
        bar.update(1)
        if done % tc.val_every == 0 or done == tc.max_iterations:
            scores = validate(method, cache, splits["val"], roi, cfg.inference, device)
            if scores:
                logger.log(iteration, scores)
                current = scores[f"val_dice/{method.primary_output}"]
            else:
                current = float(done)  # no val split: the latest model is the best
            if current > best:
                best, best_it = current, done
                save_checkpoint(snapshot(done), ckpt_dir / "best.pt")
        if done % tc.checkpoint_every == 0 or done == tc.max_iterations:
            save_checkpoint(snapshot(done), ckpt_dir / "last.pt")
            logger.flush()
    bar.close()
    logger.close()
    return TrainResult(run_dir, iteration + 1 if end > start else start, best, best_it)
