"""What reports know about methods, read from the registered classes' data.

Reports never spell a method's name: the role of a method (proposed, baseline, bound), its
place in tables and its ablation switches are class data of the
:class:`~duetseg.methods.base.Method` subclasses, looked up here through the registry
(:func:`duetseg.methods.registry.get_method_class`). The method classes import torch, so
they are imported on the first lookup, not with the reporting modules.

A name that is not registered (e.g. a configuration's own ``name``, or a run of a method
that no longer exists) is a baseline without a table position or ablation switches.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from duetseg.config import Config

if TYPE_CHECKING:
    from duetseg.methods.base import Method

__all__ = ["reference_method", "default_baseline_method", "table_order", "is_proposed",
           "ablation_switches", "ablation_flags", "methods_with_switch"]


@cache
def _classes() -> dict[str, type[Method]]:
    """Name -> class of every registered method (imported once)."""
    from duetseg.methods.registry import METHODS, get_method_class

    return {name: get_method_class(name) for name in METHODS}


def _sole(names: list[str], what: str) -> str:
    if not names:
        raise LookupError(f"no registered method is {what}")
    return names[0]


def reference_method() -> str:
    """The registered method of role ``proposed``: the default reference of significance
    tests, shown last in tables.

    Raises:
        LookupError: no registered method has that role.
    """
    return _sole([n for n, c in _classes().items() if c.role == "proposed"], "proposed")


def default_baseline_method() -> str:
    """The first registered method of role ``bound`` in table order: the default baseline of
    gain tables.

    Raises:
        LookupError: no registered method has that role.
    """
    return _sole([n for n in table_order() if _classes()[n].role == "bound"], "a bound")


def table_order() -> list[str]:
    """Registered methods with a table position, in that order."""
    placed = [(c.table_order, n) for n, c in _classes().items() if c.table_order is not None]
    return [n for _, n in sorted(placed)]


def is_proposed(method: str) -> bool:
    """Whether ``method`` is registered with role ``proposed``."""
    cls = _classes().get(method)
    return cls is not None and cls.role == "proposed"


def ablation_switches(method: str) -> tuple[str, ...]:
    """The ablation switches of ``method`` (empty when it has none or is not registered)."""
    cls = _classes().get(method)
    return () if cls is None else cls.ablation_switches


def ablation_flags(method: str, config: Config) -> dict[str, bool] | None:
    """Which ablation switches a run's config leaves on (see
    :meth:`duetseg.methods.base.Method.ablation_flags`); None without switches."""
    cls = _classes().get(method)
    return None if cls is None else cls.ablation_flags(config)


def methods_with_switch(switch: str, present: bool = True) -> list[str]:
    """Registered methods with ablation switches that have (``present``) or lack
    ``switch``, proposed first, then in table order."""
    classes = _classes()
    names = sorted((n for n, c in classes.items() if c.ablation_switches),
                   key=lambda n: (not is_proposed(n), table_order().index(n)
                                  if n in table_order() else len(classes), n))
    return [n for n in names if (switch in classes[n].ablation_switches) == present]
