"""The DataLoader over :class:`~duetseg.data.sampling.TwoStreamBatches` and its workers."""

from __future__ import annotations

import os
from functools import partial

import numpy as np
import torch
from torch.utils.data import DataLoader

from duetseg.data.sampling import TwoStreamBatches

__all__ = ["make_loader", "resolve_num_workers"]


def _seed_worker(seed: int, worker_id: int) -> None:
    """Seed torch and numpy's global state per worker (batches do not depend on it)."""
    s = (int(seed) * 1009 + worker_id) % 2**32
    torch.manual_seed(s)
    np.random.seed(s)


def resolve_num_workers(spec: int | str, processes: int = 1) -> int:
    """Loader workers for ``spec``: an int is used as is; ``"auto"`` takes half the CPU
    cores (the other half runs the network's intra-op threads), split between the
    ``processes`` of a data-parallel run, between 1 and 4 (a batch is a few memory-mapped
    crops, so more workers only cost memory)."""
    if spec != "auto":
        return int(spec)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(4, (cores or 1) // 2 // max(1, processes)))


def make_loader(dataset: TwoStreamBatches, start_iteration: int, max_iterations: int,
                num_workers: int, seed: int) -> DataLoader:
    """A DataLoader yielding the batches of iterations ``start_iteration .. max_iterations-1``.

    Args:
        dataset: the batch dataset (each item is a whole batch).
        start_iteration: first iteration (a resumed run starts where it stopped).
        max_iterations: one past the last iteration.
        num_workers: worker processes (0: load in the main process).
        seed: seeds each worker's global RNGs deterministically.

    Returns:
        The loader (batches in iteration order).
    """
    return DataLoader(dataset, batch_size=None,
                      sampler=range(int(start_iteration), int(max_iterations)),
                      num_workers=int(num_workers), pin_memory=False,
                      persistent_workers=num_workers > 0,
                      worker_init_fn=partial(_seed_worker, int(seed)),
                      # Own generator: creating the iterator must not draw from the global
                      # RNG, or a resumed run's dropout masks would differ from the original.
                      generator=torch.Generator().manual_seed(int(seed)))
