"""Methods whose network has modality branches (``ours``, ``supervised``, ``mmcml``,
``cmc``): outputs ``branch_a``, ``branch_b``, ... (one per branch, in branch order) and
their ``ensemble`` (mean softmax), declared as data by :meth:`BranchOutputs.outputs`.

A DuetNet has one branch per modality unless ``model.branches`` sets another count, which
needs ``model.branch_input: all``. Branches that read every modality have outputs that
belong to no single modality (their :class:`OutputSpec` has no modality).
"""

from __future__ import annotations

import torch

from duetseg.config import Config, ModelConfig, StrictModel
from duetseg.methods.base import Method, MethodContext, OutputSpec
from duetseg.methods.losses import SupervisedLoss, masked_branch_supervised
from duetseg.methods.networks import duetnet_from_config
from duetseg.models import DuetNet, ensemble_probabilities

__all__ = ["BRANCH_NAMES", "BranchOutputs", "DualBranchMethod", "duetnet_switches"]

BRANCH_NAMES = "abcdefghijklmnopqrstuvwxyz"


class BranchOutputs:
    """Outputs of a network returning one logits tensor per branch.

    Mixed into methods whose ``self.net(image)`` returns a list of K logits: reports each
    branch (``branch_a``, ``branch_b``, ...) and their ``ensemble`` (mean softmax), which is
    the primary output. By default branch m reads modality m (:meth:`branch_inputs`).
    """

    min_modalities = 2

    def branch_inputs(self) -> list[str | None]:
        """The modality each branch reads, in branch order; None for a branch reading every
        modality. Default: one branch per modality, in input-channel order."""
        return list(self.ctx.modalities)

    def branch_readings(self) -> list[str]:
        """What each branch reads, in words: its modality, or every modality joined by
        ``+`` (e.g. ``t1ce+t2``)."""
        every = "+".join(self.ctx.modalities)
        return [every if m is None else m for m in self.branch_inputs()]

    def branch_names(self) -> list[str]:
        """``branch_<letter>`` for each branch, in branch order."""
        return [f"branch_{BRANCH_NAMES[b]}" for b in range(len(self.branch_inputs()))]

    def output_probabilities(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = self.net(image)
        out = {name: torch.softmax(lg, 1) for name, lg in zip(self.branch_names(), logits)}
        out["ensemble"] = ensemble_probabilities(logits)
        return out

    def outputs(self) -> list[OutputSpec]:
        """One ``branch`` spec per branch (with the modality it reads, None when it reads
        every modality) and the primary ``ensemble``.

        Returns:
            The specs, in the order of :meth:`output_probabilities`.
        """
        specs = [OutputSpec(name, "branch", mod, name == self.primary_output)
                 for name, mod in zip(self.branch_names(), self.branch_inputs(), strict=True)]
        specs.append(OutputSpec("ensemble", "ensemble", None,
                                self.primary_output == "ensemble"))
        return specs


def duetnet_switches(config: Config) -> dict[str, bool]:
    """The DuetNet components a run's config leaves on: ``mmf`` (``model.fusion`` other
    than ``none``) and ``mae`` (``model.mae``)."""
    return {"mmf": config.model.fusion != "none", "mae": bool(config.model.mae)}


class DualBranchMethod(BranchOutputs, Method):
    """Shared part of methods built on DuetNet: outputs per branch and the ensemble.

    Under modality dropout a branch that reads one modality gets no loss on the crops where
    that modality is zeroed; branches that read every modality always have an input (at most
    one modality is zeroed per crop), so none of their losses is masked.
    """

    @classmethod
    def minimum_modalities(cls, options: StrictModel, model: ModelConfig | None = None) -> int:
        """One modality when ``model.branches`` sets the number of branches, else one
        branch per modality and thus :attr:`min_modalities`."""
        if model is not None and model.branches is not None:
            return 1
        return cls.min_modalities

    def __init__(self, ctx: MethodContext):
        super().__init__(ctx)
        self.net = duetnet_from_config(self.num_modalities, ctx.num_classes, ctx.model)
        self.sup_loss = SupervisedLoss()
        self.primary_output = "ensemble"

    def reads_every_input(self) -> bool:
        """Whether the network is a DuetNet whose branches read every modality."""
        return isinstance(self.net, DuetNet) and self.net.reads_all

    def branch_inputs(self) -> list[str | None]:
        """Branch m reads modality m, or every branch reads every modality (None)."""
        if self.reads_every_input():
            return [None] * self.net.num_branches
        return super().branch_inputs()

    def present_mask(self) -> torch.Tensor | None:
        """The (B, K) inputs-present mask, which is also the branches' (branch m reads
        modality m); None when the branches read every modality, as none is then absent."""
        return None if self.reads_every_input() else super().present_mask()

    def supervised(self, logits: list[torch.Tensor], label: torch.Tensor,
                   present: torch.Tensor | None = None) -> torch.Tensor:
        """Sum over branches of the supervised loss on the labelled crops.

        Args:
            logits: K branch logits; the first ``label.shape[0]`` crops are labelled.
            label: class indices of the labelled crops.
            present: bool (B, K) inputs present (modality dropout); a branch gets no loss on
                the crops where its input is absent. None = all present.
        """
        if present is not None:
            return masked_branch_supervised(self.sup_loss, logits, label, present)
        n = label.shape[0]
        return sum(self.sup_loss(lg[:n], label) for lg in logits)

    def describe_outputs(self) -> dict[str, str]:
        desc = {name: f"branch reading {reading}"
                for name, reading in zip(self.branch_names(), self.branch_readings())}
        desc["ensemble"] = "mean of the branches' softmax"
        return desc
