"""Methods whose network has one branch per modality (``ours``, ``supervised``, ``mmcml``,
``cmc``): outputs ``branch_a``, ``branch_b``, ... (one per modality, in input order) and
their ``ensemble`` (mean softmax), declared as data by :meth:`BranchOutputs.outputs`."""

from __future__ import annotations

import torch

from duetseg.config import Config
from duetseg.methods.base import Method, MethodContext, OutputSpec
from duetseg.methods.losses import SupervisedLoss, masked_branch_supervised
from duetseg.methods.networks import duetnet_from_config
from duetseg.models import ensemble_probabilities

__all__ = ["BRANCH_NAMES", "BranchOutputs", "DualBranchMethod", "duetnet_switches"]

BRANCH_NAMES = "abcdefghijklmnopqrstuvwxyz"


class BranchOutputs:
    """Outputs of a network returning one logits tensor per modality branch.

    Mixed into methods whose ``self.net(image)`` returns a list of K logits: reports each
    branch (``branch_a``, ``branch_b``, ...) and their ``ensemble`` (mean softmax), which is
    the primary output.
    """

    min_modalities = 2

    def branch_names(self) -> list[str]:
        """``branch_<letter>`` for each modality, in input-channel order."""
        return [f"branch_{BRANCH_NAMES[m]}" for m in range(self.num_modalities)]

    def output_probabilities(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = self.net(image)
        out = {name: torch.softmax(lg, 1) for name, lg in zip(self.branch_names(), logits)}
        out["ensemble"] = ensemble_probabilities(logits)
        return out

    def outputs(self) -> list[OutputSpec]:
        """One ``branch`` spec per modality (with the modality it reads) and the primary
        ``ensemble``.

        Returns:
            The specs, in the order of :meth:`output_probabilities`.
        """
        specs = [OutputSpec(name, "branch", mod, name == self.primary_output)
                 for name, mod in zip(self.branch_names(), self.ctx.modalities)]
        specs.append(OutputSpec("ensemble", "ensemble", None,
                                self.primary_output == "ensemble"))
        return specs


def duetnet_switches(config: Config) -> dict[str, bool]:
    """The DuetNet components a run's config leaves on: ``mmf`` (``model.fusion`` other
    than ``none``) and ``mae`` (``model.mae``)."""
    return {"mmf": config.model.fusion != "none", "mae": bool(config.model.mae)}


class DualBranchMethod(BranchOutputs, Method):
    """Shared part of methods built on DuetNet: outputs per branch and the ensemble."""

    def __init__(self, ctx: MethodContext):
        super().__init__(ctx)
        self.net = duetnet_from_config(self.num_modalities, ctx.num_classes, ctx.model)
        self.sup_loss = SupervisedLoss()
        self.primary_output = "ensemble"

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
        desc = {name: f"branch reading {mod}"
                for name, mod in zip(self.branch_names(), self.ctx.modalities)}
        desc["ensemble"] = "mean of the branches' softmax"
        return desc
