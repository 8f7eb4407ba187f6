"""Registry of training methods: name -> "module:Class". Adding a method is one line here."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Sequence
from typing import Any

from duetseg.config import MethodConfig, ModelConfig
from duetseg.errors import ConfigError
from duetseg.methods.base import Method, MethodContext

__all__ = ["METHODS", "get_method_class", "build_method", "available_methods",
           "fit_branches", "resolved_options"]

log = logging.getLogger(__name__)

METHODS: dict[str, str] = {
    "ours": "duetseg.methods.ours:Ours",
    "supervised": "duetseg.methods.supervised:Supervised",
    "mean_teacher": "duetseg.methods.mean_teacher:MeanTeacher",
    "ict": "duetseg.methods.ict:ICT",
    "entropy_min": "duetseg.methods.entropy_min:EntropyMinimization",
    "mmcml": "duetseg.methods.mmcml:MMCML",
    "cmc": "duetseg.methods.cmc:CMC",
    "urpc": "duetseg.methods.urpc:URPC",
    "mlrpl": "duetseg.methods.mlrpl:MLRPL",
    "bcp": "duetseg.methods.bcp:BCP",
}


def get_method_class(name: str) -> type[Method]:
    """Import and return the class registered as ``name``.

    Raises:
        ConfigError: unknown method name.
    """
    if name not in METHODS:
        raise ConfigError(f"unknown method {name!r}; registered: {', '.join(sorted(METHODS))}")
    module, cls = METHODS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def build_method(ctx: MethodContext) -> Method:
    """Instantiate the method named in ``ctx.method.name``.

    Raises:
        ConfigError: unknown method, fewer modalities than the method's network takes, or
            model settings that do not fit the modalities (e.g. ``model.branches``).
    """
    cls = get_method_class(ctx.method.name)
    options = cls.parse_options(ctx.method.options)
    needed = cls.minimum_modalities(options, ctx.model)
    if len(ctx.modalities) < needed:
        branched = _two_branches_reading_all(ctx.model)
        hint = (" (or set model.branches=2 and model.branch_input=all: two branches "
                "reading every modality)"
                if cls.minimum_modalities(options, branched) <= len(ctx.modalities) else "")
        raise ConfigError(f"method {ctx.method.name!r} has one branch per modality and needs "
                          f"at least {needed} modalities; the dataset has "
                          f"{list(ctx.modalities)}; train a single-network method (e.g. "
                          f"mean_teacher) on a single-modality cache{hint}")
    return cls(ctx)


def fit_branches(method: MethodConfig, model: ModelConfig,
                 modalities: Sequence[str]) -> ModelConfig:
    """The model settings for training ``method`` on ``modalities``.

    A method with one branch per modality (DuetNet) given fewer modalities than it has
    branches, with ``model.branches`` unset, gets branches that each read every modality
    (``model.branches=2``, ``model.branch_input=all``): on a
    one-modality cache, two branches that both read it, the recipe measured best on the
    whole tumour. Settings the user chose (``model.branches`` set) are kept, and so is a
    model no branch count can fit (:func:`build_method` then explains).

    Args:
        method: the run's method settings.
        model: the run's model settings.
        modalities: the modalities the run trains on.

    Returns:
        ``model``, or a copy with ``branches`` and ``branch_input`` set.

    Raises:
        ConfigError: unknown method or invalid options.
    """
    cls = get_method_class(method.name)
    options = cls.parse_options(method.options)
    if model.branches is not None or cls.minimum_modalities(options, model) <= len(modalities):
        return model
    branched = _two_branches_reading_all(model)
    if cls.minimum_modalities(options, branched) > len(modalities):
        return model
    log.info("%s on %s: two branches that each read every modality (model.branches=2, "
             "model.branch_input=all)", method.name, "+".join(modalities))
    return branched


def _two_branches_reading_all(model: ModelConfig) -> ModelConfig:
    return model.model_copy(update={"branches": 2, "branch_input": "all"})


def resolved_options(method: MethodConfig) -> dict[str, Any]:
    """``method.options`` with the method's defaults filled in.

    A run saves these in its ``config.yaml``, so the file still says what was trained when
    a default changes (e.g. ``ours``' consistency, once the paper's MSE).

    Raises:
        ConfigError: unknown method or invalid options.
    """
    return get_method_class(method.name).parse_options(method.options).model_dump(mode="json")


def available_methods() -> dict[str, str]:
    """Name -> one-line description of every registered method."""
    return {name: get_method_class(name).description for name in sorted(METHODS)}
