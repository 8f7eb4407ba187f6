"""Shared helpers for the tests of ``ours``' perturbed unlabelled views (not collected)."""

from __future__ import annotations

import torch

from duetseg.config import MethodConfig, ModelConfig
from duetseg.methods import MethodContext, build_method

__all__ = ["ours", "record_views"]


def ours(**options):
    """A tiny ``ours`` method (width 4, no dropout) with the given ``method.options``."""
    return build_method(MethodContext(("t1ce", "t2"), 2, ModelConfig(base_width=4, dropout=0.0),
                                      MethodConfig(name="ours", options=options), 100))


def record_views(method, monkeypatch) -> tuple[list, list]:
    """Record every network call and the teacher each consistency call receives.

    Returns:
        ``(calls, teachers)``: per network call ``(input, grad enabled, detached outputs)``;
        per consistency call its ``teacher`` argument.
    """
    calls, teachers = [], []
    forward = method.net.forward

    def recording(x, detach_gates_from=None):
        out = forward(x, detach_gates_from)
        calls.append((x.detach().clone(), torch.is_grad_enabled(), [o.detach() for o in out]))
        return out

    monkeypatch.setattr(method.net, "forward", recording)
    consistency = method.consistency
    monkeypatch.setattr(method, "consistency",
                        lambda lg, teacher=None: teachers.append(teacher)
                        or consistency(lg, teacher))
    return calls, teachers
