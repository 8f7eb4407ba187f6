"""Data-parallel training under ``torchrun`` (PyTorch DistributedDataParallel).

``torchrun --nproc_per_node N -m duetseg train ...`` starts N processes that each run
:func:`duetseg.training.train`; they find each other through the variables torchrun sets
(``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``). With
``WORLD_SIZE`` unset or 1 nothing here does anything and training is the single-process
loop, bit for bit.

What a distributed run does:

* **Backend and device.** NCCL with one GPU per process (``cuda:LOCAL_RANK``; an index in
  ``train.device`` is ignored, choose GPUs with ``CUDA_VISIBLE_DEVICES``) when
  ``train.device`` resolves to CUDA, gloo on CPUs otherwise.
* **Batches.** Every rank draws its own disjoint part of one global batch of
  ``train.batch_size x WORLD_SIZE`` crops (see :class:`~duetseg.data.sampling.TwoStreamBatches`):
  ``train.batch_size`` and ``train.labeled_bs`` are *per process*.
* **Gradients.** The method is wrapped in ``DistributedDataParallel``: gradients are
  averaged over the ranks, so every rank takes the same optimiser step and the parameters
  stay identical (EMA teachers too: they are updated from identical students). Every
  registered method gives every trainable parameter a gradient at every step; a method that
  does not sets ``Method.ddp_find_unused_parameters``.
* **BatchNorm.** On CUDA the layers become ``SyncBatchNorm`` (statistics over the whole
  global batch, as one process with the global batch would compute them). On CPUs (gloo has
  no SyncBatchNorm) each process normalises with its own crops; running statistics are
  broadcast from rank 0 before every forward pass, so rank 0's are the ones saved.
* **Randomness.** Model initialisation uses ``train.seed`` on every rank (DDP also
  broadcasts rank 0's weights). The global torch RNG (dropout, noise) is re-seeded before
  every step from ``(seed, rank, iteration)``, so ranks draw different masks and a resumed
  run draws exactly the masks of an uninterrupted one.
* **Files.** Only rank 0 writes ``config.yaml``, ``splits.json``, checkpoints, ``log.csv``
  and TensorBoard, shows the progress bar and validates; the others wait. Logged losses are
  averaged over the ranks. On resume every rank reads ``checkpoints/last.pt``, so the run
  directory must be on a file system all processes see.
* **Failures.** An error in rank 0's file work (e.g. an existing run without ``--resume``)
  or a non-finite loss on any rank is raised on every rank, and all stop cleanly.
"""

from __future__ import annotations

import atexit
import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from duetseg.errors import DuetsegError

__all__ = ["DistContext", "init_distributed", "shutdown", "env_rank", "is_main", "barrier",
           "on_main", "any_rank", "average", "step_seed", "sync_batchnorm", "training_step"]

T = TypeVar("T")

# Long enough for rank 0 to validate while the other ranks wait in a collective.
_TIMEOUT = timedelta(minutes=30)
_OWNS_GROUP = False


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in a (possibly single-process) run.

    Attributes:
        rank: global rank (0 in a single-process run).
        world_size: number of processes.
        local_rank: rank on this node (selects the GPU).
        device: the device this process trains on.
    """

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def enabled(self) -> bool:
        """Whether several processes train together."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0 (the one that writes files)."""
        return self.rank == 0


def env_rank() -> int:
    """This process's rank from the environment torchrun sets (0 when not under torchrun)."""
    return int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    """Rank 0 of the current process group, or True without one."""
    return not dist.is_initialized() or dist.get_rank() == 0


def barrier() -> None:
    """Wait for every rank (no-op without a process group)."""
    if dist.is_initialized():
        dist.barrier()


def init_distributed(device: torch.device) -> DistContext:
    """Join the process group torchrun describes, or return a single-process context.

    The group is created once per process and kept for later calls (``duetseg experiment``
    trains several runs in one process): a destroyed default group cannot be re-created
    reliably under torchrun (the new one meets the old one's rendezvous keys and hangs), so
    it is destroyed by :func:`shutdown` when the process exits, normally or on an error. A
    group the caller initialised is used as it is and left to the caller.

    Args:
        device: the device ``train.device`` resolves to; under torchrun a CUDA device becomes
            ``cuda:LOCAL_RANK``.

    Returns:
        The context.

    Raises:
        DuetsegError: CUDA was asked for but this process has no GPU of its local rank.
    """
    global _OWNS_GROUP
    world = dist.get_world_size() if dist.is_initialized() else int(
        os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext(0, 1, 0, device)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise DuetsegError(f"local rank {local_rank} has no GPU "
                               f"({torch.cuda.device_count()} visible): use fewer processes")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                init_method="env://", timeout=_TIMEOUT)
        _OWNS_GROUP = True
        atexit.register(shutdown)
    return DistContext(dist.get_rank(), dist.get_world_size(), local_rank, device)


def shutdown() -> None:
    """Destroy the process group if :func:`init_distributed` created it (runs at exit)."""
    global _OWNS_GROUP
    if _OWNS_GROUP and dist.is_initialized():
        dist.destroy_process_group()
    _OWNS_GROUP = False


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling (to be raised on other ranks), else a plain copy."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001 - any unpicklable exception is summarised instead
        return DuetsegError(f"{type(exc).__name__} on rank 0: {exc}")


def on_main(ctx: DistContext, fn: Callable[[], T]) -> T:
    """Run ``fn`` on rank 0 only and give its result, or its exception, to every rank.

    Args:
        ctx: the run's context (single process: just calls ``fn``).
        fn: the work (file writes, validation); its result must be picklable.

    Returns:
        ``fn()``'s result on every rank.

    Raises:
        Exception: whatever ``fn`` raised on rank 0, raised on every rank.
    """
    if not ctx.enabled:
        return fn()
    outcome: list[Any] = [None]
    error: BaseException | None = None
    if ctx.is_main:
        try:
            outcome[0] = (True, fn())
        except Exception as exc:  # noqa: BLE001 - re-raised below, on every rank
            error = exc
            outcome[0] = (False, _portable(exc))
    dist.broadcast_object_list(outcome, src=0)
    ok, value = outcome[0]
    if error is not None:
        raise error
    if not ok:
        raise value
    return value


def any_rank(ctx: DistContext, flag: bool) -> bool:
    """Whether ``flag`` is True on at least one rank (every rank must call this)."""
    if not ctx.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=ctx.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def average(ctx: DistContext, values: dict[str, float]) -> dict[str, float]:
    """Mean of each value over the ranks (every rank must pass the same keys)."""
    if not ctx.enabled or not values:
        return values
    t = torch.tensor(list(values.values()), dtype=torch.float64, device=ctx.device)
    dist.all_reduce(t)
    return {k: float(v) / ctx.world_size for k, v in zip(values, t.tolist())}


def step_seed(seed: int, rank: int, iteration: int) -> int:
    """The torch seed of ``rank`` at ``iteration`` in a distributed run."""
    entropy = [int(seed) % 2**64, 3, int(rank), int(iteration)]
    state = np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)
    return int(state[0]) >> 1  # torch.manual_seed takes a signed 64-bit value


def sync_batchnorm(ctx: DistContext, method: nn.Module) -> nn.Module:
    """On CUDA in a distributed run, every ``BatchNorm`` of ``method`` becomes ``SyncBatchNorm``.

    The parameters and buffers are kept (same objects, same state-dict keys), so checkpoints
    load into the plain network. Elsewhere ``method`` is returned unchanged.
    """
    if ctx.enabled and ctx.device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(method)
    return method


class _TrainingStep(nn.Module):
    """Routes DDP's forward to ``method.training_losses`` (methods define no ``forward``)."""

    def __init__(self, method: nn.Module):
        super().__init__()
        self.method = method

    def forward(self, image: torch.Tensor, label: torch.Tensor,
                iteration: int) -> dict[str, torch.Tensor]:
        return self.method.training_losses(image, label, iteration)


def training_step(ctx: DistContext, method: nn.Module
                  ) -> Callable[[torch.Tensor, torch.Tensor, int], dict[str, torch.Tensor]]:
    """What the loop calls to get a batch's losses: the method itself, or its DDP wrapper.

    Call this after the method is on ``ctx.device`` and its checkpoint (if any) is loaded;
    on CUDA, convert BatchNorm with :func:`sync_batchnorm` before building the optimiser.

    Returns:
        ``fn(image, label, iteration) -> losses``; under DDP ``losses["loss"].backward()``
        leaves gradients averaged over the ranks. The batch's modality-dropout mask is not
        an argument: the loop gives it to ``method.set_present`` before each call (the
        wrapper holds the same method object).
    """
    if not ctx.enabled:
        return method.training_losses
    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    find_unused = bool(getattr(method, "ddp_find_unused_parameters", False))
    return nn.parallel.DistributedDataParallel(
        _TrainingStep(method), device_ids=device_ids, find_unused_parameters=find_unused,
    )
