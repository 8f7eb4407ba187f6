"""Exponential-moving-average (EMA) teacher shared by Mean Teacher and ICT.

The teacher is a frozen deep copy of the student network (``requires_grad`` False on every
parameter, so :meth:`Method.trainable_parameters` leaves it out) registered as a submodule of
the method, so it is saved in and restored from checkpoints with the student.

Update rule, after each optimiser step (REFERENCE "Mean Teacher")::

    decay = min(1 - 1 / (step + 1), 0.99)
    theta_teacher <- decay * theta_teacher + (1 - decay) * theta_student

With ``step = 0`` the decay is 0 and the teacher becomes a copy of the student. The methods
call :meth:`EMATeacher.update` with ``step = iteration + 1`` (the number of optimiser steps
taken so far, as in SSL4MIS, whose first update uses a decay of 0.5).

Buffers (BatchNorm ``running_mean``, ``running_var``, ``num_batches_tracked``) are *copied*
from the student at every update, not averaged: running statistics are estimates of the
data, not learned weights, and a copy keeps them consistent with the student's last
statistics. (The teacher does not use them in training mode, see below; they matter only if
the teacher is ever run in eval mode.)

Train or eval mode for the teacher: the teacher runs in the **same mode as the method**, i.e.
in training mode while the student trains (dropout active, BatchNorm normalising with the
statistics of the teacher's own batch). Reasons: (1) it reproduces the SSL4MIS baselines
whose numbers Table 1 compares against, which leave the teacher in training mode; (2) Mean
Teacher (Tarvainen and Valpola, 2017) treats dropout on both student and teacher as part of
the perturbation the consistency is made invariant to; (3) eval-mode BatchNorm would
normalise with running statistics that lag behind the EMA weights early in training. The
price is that teacher targets depend (through BatchNorm) on the other crops in its batch.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["EMATeacher", "ema_decay"]


def ema_decay(step: int, max_decay: float = 0.99) -> float:
    """The decay ``min(1 - 1/(step + 1), max_decay)`` used at update number ``step``.

    Args:
        step: number of optimiser steps taken (0 gives decay 0: teacher = student).
        max_decay: the ceiling reached after ``1/(1 - max_decay) - 1`` steps.

    Returns:
        The decay in [0, max_decay].
    """
    return min(1.0 - 1.0 / (max(step, 0) + 1), max_decay)


class EMATeacher(nn.Module):
    """A frozen copy of a network updated as an exponential moving average of it.

    Args:
        student: the network to copy (its current weights become the teacher's).
        max_decay: the EMA decay ceiling (0.99 in the reference).

    Attributes:
        model: the teacher network; its parameters never require gradients.
    """

    def __init__(self, student: nn.Module, max_decay: float = 0.99):
        super().__init__()
        self.model = copy.deepcopy(student)
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.max_decay = max_decay

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Teacher logits for ``x``, without building a graph (targets carry no gradient)."""
        return self.model(x)

    @torch.no_grad()
    def update(self, student: nn.Module, step: int) -> float:
        """Move the teacher towards ``student`` and copy its buffers.

        Args:
            student: the network being trained (same architecture as the teacher).
            step: number of optimiser steps taken; sets the decay via :func:`ema_decay`.

        Returns:
            The decay used.

        Raises:
            ValueError: the two networks do not have the same parameters/buffers.
        """
        decay = ema_decay(step, self.max_decay)
        t_params = dict(self.model.named_parameters())
        s_params = dict(student.named_parameters())
        t_bufs = dict(self.model.named_buffers())
        s_bufs = dict(student.named_buffers())
        if t_params.keys() != s_params.keys() or t_bufs.keys() != s_bufs.keys():
            raise ValueError("EMA teacher and student have different parameters or buffers")
        for name, t in t_params.items():
            t.mul_(decay).add_(s_params[name].detach(), alpha=1.0 - decay)
        for name, b in t_bufs.items():
            b.copy_(s_bufs[name])
        return decay
