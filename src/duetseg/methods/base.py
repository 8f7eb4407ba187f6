"""The interface every training objective implements.

A method is an ``nn.Module`` that owns its network(s) and turns a two-stream batch into
named losses. The trainer only sees this interface: it never branches on a method's name.

Modality dropout (``train.modality_dropout``): before each step the trainer calls
:meth:`Method.set_present` with the batch's (B, K) mask of the inputs that were not zeroed.
Every method receives the zeroed channels; a method that can use the mask (``ours`` and
``supervised`` with DuetNet skip the losses of a branch whose one modality is absent) reads
it with :meth:`Method.present_mask`; the others simply learn from the zeroed input. With a
single modality there is nothing to drop, and :meth:`Method.check_training` refuses it.
The batch before dropout comes with the mask (:meth:`Method.full_input`, e.g. for
``ours``'s ``missing_distill``).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from pydantic import ValidationError
from torch import nn

from duetseg.config import Config, MethodConfig, ModelConfig, StrictModel, TrainConfig
from duetseg.errors import ConfigError
from duetseg.method_roles import ABLATION_SWITCHES, Role
from duetseg.output_spec import OutputSpec
from duetseg.precision import to_memory_format

__all__ = ["ABLATION_SWITCHES", "MethodContext", "Method", "OutputSpec", "Role",
           "sigmoid_rampup"]


@dataclass(frozen=True)
class MethodContext:
    """What a method needs to build itself.

    Attributes:
        modalities: modality names, in input-channel order.
        num_classes: number of classes including background.
        model: network settings.
        method: objective settings.
        max_iterations: length of training (for ramp-ups).
    """

    modalities: tuple[str, ...]
    num_classes: int
    model: ModelConfig
    method: MethodConfig
    max_iterations: int


def sigmoid_rampup(iteration: int, length: float) -> float:
    """``exp(-5 (1 - t/L)^2)`` ramp from ~0 to 1 over ``length`` iterations (1 if length <= 0)."""
    if length <= 0:
        return 1.0
    t = min(max(iteration / length, 0.0), 1.0)
    return float(torch.exp(torch.tensor(-5.0 * (1.0 - t) ** 2)))


class Method(nn.Module, ABC):
    """Base class of training objectives.

    Subclasses set ``name`` and ``description``, optionally an ``Options`` pydantic model for
    ``method.options`` and ``default_weight`` for the unsupervised loss weight.

    Reports read what a method is from class data, never from its name: :attr:`role`,
    :attr:`table_order`, :attr:`ablation_switches` and :meth:`ablation_flags`.

    Attributes:
        uses_unlabeled: whether batches need unlabelled crops; when False the trainer feeds
            ``labeled_bs`` labelled crops only.
        primary_output: the output name used for validation and as the user's prediction.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    default_weight: ClassVar[float] = 1.0
    default_rampup_fraction: ClassVar[float] = 0.5
    # True for a method whose steps may leave trainable parameters without a gradient:
    # data-parallel training then lets DDP look for them (``find_unused_parameters``).
    ddp_find_unused_parameters: ClassVar[bool] = False
    # fewest input modalities the method's network can take (one branch per modality: 2);
    # :meth:`minimum_modalities` may lower it for some options or model settings
    min_modalities: ClassVar[int] = 1
    # the method's part in a comparison; the registered ``proposed`` method is the default
    # reference of significance tests, the first ``bound`` (in table order) the default
    # baseline of gain tables
    role: ClassVar[Role] = "baseline"
    # position among the compared methods in tables (ascending); None: after the ordered
    # ones, alphabetically
    table_order: ClassVar[int | None] = None
    # the components of ``ABLATION_SWITCHES`` a run of this method can turn off, in order;
    # empty: the method has no ablation
    ablation_switches: ClassVar[tuple[str, ...]] = ()

    class Options(StrictModel):
        """Method-specific options (none by default)."""

    @classmethod
    def ablation_flags(cls, config: Config) -> dict[str, bool] | None:
        """Which of :attr:`ablation_switches` a run's config leaves on.

        Args:
            config: the run's config (as saved in its ``config.yaml``).

        Returns:
            Switch -> on, one entry per switch of :attr:`ablation_switches`; None for a
            method without ablation switches.
        """
        return None

    @classmethod
    def minimum_modalities(cls, options: StrictModel, model: ModelConfig | None = None) -> int:
        """Fewest input modalities the network chosen by ``options`` and ``model`` can take.

        Args:
            options: the method's parsed options (:meth:`parse_options`).
            model: the run's model settings (None: the defaults).

        Returns:
            :attr:`min_modalities` unless a subclass says otherwise.
        """
        return cls.min_modalities

    @classmethod
    def option_defaults(cls) -> dict[str, Any]:
        """Every option's default, removed options included (with the value that meant
        "off"): what a run config that does not spell an option used.

        Returns:
            Option name -> default, as written in a run config (JSON types).
        """
        defaults = {name: field.default for name, field in cls.Options.model_fields.items()}
        return json.loads(json.dumps({**getattr(cls.Options, "removed", {}), **defaults}))

    @classmethod
    def parse_options(cls, options: dict[str, Any]) -> StrictModel:
        """``options`` validated against :class:`Options`, defaults filled in.

        Raises:
            ConfigError: an unknown option or a bad value.
        """
        try:
            return cls.Options.model_validate(options)
        except ValidationError as exc:
            raise ConfigError(f"invalid options for method {cls.name!r}:\n{exc}") from exc

    def __init__(self, ctx: MethodContext):
        super().__init__()
        self.ctx = ctx
        self.options = self.parse_options(ctx.method.options)
        weight = ctx.method.consistency_weight
        self.weight = self.default_weight if weight is None else weight
        self.uses_unlabeled = True
        self.primary_output = "prediction"
        self._present: torch.Tensor | None = None
        self._full_image: torch.Tensor | None = None

    @property
    def num_modalities(self) -> int:
        return len(self.ctx.modalities)

    def unsup_weight(self, iteration: int) -> float:
        """Unsupervised weight at ``iteration``: weight x ramp-up over the ramp-up fraction."""
        fraction = self.ctx.method.rampup_fraction
        if fraction is None:
            fraction = self.default_rampup_fraction
        length = fraction * self.ctx.max_iterations
        return self.weight * sigmoid_rampup(iteration, length)

    def add_unsupervised(self, losses: dict[str, torch.Tensor], total: torch.Tensor,
                         unsup: torch.Tensor, iteration: int) -> torch.Tensor:
        """Record ``unsup`` and its weight in ``losses``; return ``total + weight * unsup``."""
        weight = self.unsup_weight(iteration)
        losses["unsup"] = unsup
        losses["unsup_weight"] = torch.tensor(weight)
        return total + weight * unsup

    def set_present(self, present: torch.Tensor | None,
                    full_image: torch.Tensor | None = None) -> None:
        """Which inputs of the next batches are present (modality dropout).

        Applies to every following :meth:`training_losses` call until changed.

        Args:
            present: bool (B, K) mask, True where crop b's modality m was not zeroed; None
                or all True = every input present (stored as None, so a batch without
                dropout takes exactly the code path it always took).
            full_image: the batch before dropout (kept only while an input is absent).
        """
        if present is not None:
            present = torch.as_tensor(present, dtype=torch.bool)
            if bool(present.all()):
                present = None
        self._present = present
        self._full_image = None if present is None else full_image

    def full_input(self, like: torch.Tensor) -> torch.Tensor | None:
        """The batch before dropout on ``like``'s device and memory format, or None when
        no input is absent or the trainer gave none."""
        if self._full_image is None:
            return None
        channels_last = (not like.is_contiguous()
                         and like.is_contiguous(memory_format=torch.channels_last_3d))
        return to_memory_format(self._full_image.to(like.device, like.dtype), channels_last)

    def present_mask(self) -> torch.Tensor | None:
        """The bool (B, K) mask given to :meth:`set_present`, or None if all present."""
        return self._present

    def check_training(self, train: TrainConfig) -> None:
        """Refuse training settings the method cannot honour; the trainer calls it once,
        after building the method. The default refuses only modality dropout on a single
        modality (it would have nothing to drop).

        Args:
            train: the run's training settings.

        Raises:
            ConfigError: a setting the method cannot train with.
        """
        if train.modality_dropout > 0 and self.num_modalities < 2:
            raise ConfigError(
                f"train.modality_dropout={train.modality_dropout} needs at least two "
                f"modalities, but the run has one ({', '.join(self.ctx.modalities)}): set "
                f"train.modality_dropout=0")

    def trainable_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters the optimiser updates (teachers kept by EMA are excluded)."""
        return (p for p in self.parameters() if p.requires_grad)

    @abstractmethod
    def training_losses(
        self, image: torch.Tensor, label: torch.Tensor, iteration: int
    ) -> dict[str, torch.Tensor]:
        """Losses of one batch.

        Args:
            image: (B, K, X, Y, Z); the first ``label.shape[0]`` items are labelled.
            label: (labeled_bs, X, Y, Z) class indices.
            iteration: current iteration (0-based).

        Returns:
            Named scalar losses; ``"loss"`` is the total that is back-propagated.
        """

    def after_step(self, iteration: int) -> None:
        """Hook after each optimiser step (e.g. an EMA teacher update)."""

    @abstractmethod
    def output_probabilities(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """Softmax probabilities of every reported output for a (B, K, X, Y, Z) input."""

    def describe_outputs(self) -> dict[str, Any]:
        """What each output is (e.g. which modality a branch reads); stored in summaries."""
        return {}

    def outputs(self) -> list[OutputSpec]:
        """The outputs of :meth:`output_probabilities`, as data.

        The default suits single-network methods: one ``single`` spec per output of
        :meth:`describe_outputs` (just :attr:`primary_output` when it describes none), the
        primary output marked. Methods with modality branches override it.

        Returns:
            One spec per output, in output order.
        """
        names = list(self.describe_outputs()) or [self.primary_output]
        return [OutputSpec(n, "single", None, n == self.primary_output) for n in names]
