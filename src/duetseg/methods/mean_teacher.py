"""``mean_teacher``: Mean Teacher (Tarvainen and Valpola, 2017) on one VNet.

One VNet reads the modalities as input channels. The student sees the whole batch; labelled
crops get CE + Dice. The teacher is the EMA of the student (:mod:`duetseg.methods.ema`,
decay ``min(1 - 1/(step+1), 0.99)``, same train/eval mode as the student) and sees the
unlabelled crops with Gaussian noise::

    u_teacher = u + clamp(N(0, sigma^2), -c, c)          sigma = 0.1, c = 0.2
    L_unsup   = mean of (softmax(student(u)) - softmax(teacher(u_teacher)))^2
                (mean over unlabelled crops, classes and voxels)
    L         = L_sup + w(t) L_unsup                     w = 0.1 x exp(-5 (1 - t)^2) ramp

Interpretation choices: the teacher's targets carry no gradient (computed under no_grad);
the student's unlabelled prediction comes from the same forward pass as the labelled crops
(so BatchNorm statistics cover the whole batch, as in SSL4MIS); the noise is drawn from the
global torch generator (reproducible from a checkpoint's RNG state); the EMA update happens
in :meth:`MeanTeacher.after_step` with ``step = iteration + 1``.
"""

from __future__ import annotations

import torch
from pydantic import Field

from duetseg.config import StrictModel
from duetseg.methods.base import MethodContext
from duetseg.methods.ema import EMATeacher
from duetseg.methods.single import SingleNetworkMethod

__all__ = ["MeanTeacher", "teacher_noise"]


def teacher_noise(x: torch.Tensor, std: float, clip: float) -> torch.Tensor:
    """Clipped Gaussian noise shaped like ``x``: ``clamp(N(0, std^2), -clip, clip)``."""
    if std == 0:
        return torch.zeros_like(x)
    return torch.clamp(torch.randn_like(x) * std, -clip, clip)


class MeanTeacher(SingleNetworkMethod):
    """Student VNet + EMA teacher; MSE between softmaxes on unlabelled crops."""

    name = "mean_teacher"
    table_order = 1
    description = "Mean Teacher: EMA teacher on noisy input, MSE between softmaxes (one VNet)"
    default_weight = 0.1
    default_rampup_fraction = 0.5

    class Options(StrictModel):
        """Mean Teacher options.

        Attributes:
            noise_std: standard deviation of the teacher's input noise.
            noise_clip: the noise is clamped to ``[-noise_clip, noise_clip]``.
            ema_decay: ceiling of the EMA decay.
        """

        noise_std: float = Field(default=0.1, ge=0.0)
        noise_clip: float = Field(default=0.2, ge=0.0)
        ema_decay: float = Field(default=0.99, ge=0.0, le=1.0)

    def __init__(self, ctx: MethodContext):
        super().__init__(ctx)
        self.teacher = EMATeacher(self.net, self.options.ema_decay)

    def consistency(self, student_probs: torch.Tensor, unlabeled: torch.Tensor) -> torch.Tensor:
        """Mean squared difference between the student's and the teacher's softmax.

        Args:
            student_probs: student softmax on the unlabelled crops (B_u, C, X, Y, Z).
            unlabeled: the unlabelled input crops (B_u, K, X, Y, Z), before noise.

        Returns:
            Scalar loss; no gradient reaches the teacher.
        """
        noisy = unlabeled + teacher_noise(unlabeled, self.options.noise_std,
                                          self.options.noise_clip)
        with torch.no_grad():
            target = torch.softmax(self.teacher(noisy), 1)
        return torch.mean((student_probs - target) ** 2)

    def training_losses(self, image, label, iteration):
        n = label.shape[0]
        logits = self.net(image)
        sup = self.supervised(logits, label)
        losses = {"sup": sup}
        total = sup
        if self.uses_unlabeled and image.shape[0] > n:
            unsup = self.consistency(torch.softmax(logits[n:], 1), image[n:])
            total = self.add_unsupervised(losses, total, unsup, iteration)
        losses["loss"] = total
        return losses

    def after_step(self, iteration: int) -> None:
        """EMA update of the teacher with ``step = iteration + 1`` optimiser steps taken."""
        self.teacher.update(self.net, iteration + 1)
