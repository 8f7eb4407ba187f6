"""Registry of training methods: name -> "module:Class". Adding a method is one line here."""

from __future__ import annotations

import importlib
from typing import Any

from duetseg.config import MethodConfig
from duetseg.errors import ConfigError
from duetseg.methods.base import Method, MethodContext

__all__ = ["METHODS", "get_method_class", "build_method", "available_methods",
           "resolved_options"]

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
        branched = ctx.model.model_copy(update={"branches": 2, "branch_input": "all"})
        hint = (" (or set model.branches=2 and model.branch_input=all: two branches "
                "reading every modality)"
                if cls.minimum_modalities(options, branched) <= len(ctx.modalities) else "")
        raise ConfigError(f"method {ctx.method.name!r} has one branch per modality and needs "
                          f"at least {needed} modalities; the dataset has "
                          f"{list(ctx.modalities)}; train a single-network method (e.g. "
                          f"mean_teacher) on a single-modality cache{hint}")
    return cls(ctx)


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
