"""Which settings differ between two configs, as dotted keys."""

from __future__ import annotations

from typing import Any

__all__ = ["ABSENT", "changed_settings"]


class _Absent:
    """The value of a key that one of the compared dicts lacks."""

    def __repr__(self) -> str:
        return "<absent>"


ABSENT = _Absent()


def changed_settings(old: Any, new: Any, prefix: str = "") -> dict[str, tuple[Any, Any]]:
    """The leaves that differ between two nested dicts (e.g. ``Config.model_dump()``).

    A key present on one side only counts as changed (its missing side is :data:`ABSENT`).

    Args:
        old: the first dict (or leaf value).
        new: the second.
        prefix: prepended to every key (used by the recursion).

    Returns:
        Dotted key (``train.lr``) -> ``(old value, new value)``, keys in sorted order.
    """
    if isinstance(old, dict) and isinstance(new, dict):
        changed: dict[str, tuple[Any, Any]] = {}
        for key in sorted(set(old) | set(new), key=str):
            changed.update(changed_settings(old.get(key, ABSENT), new.get(key, ABSENT),
                                            f"{prefix}{key}."))
        return changed
    return {} if old == new else {prefix[:-1]: (old, new)}
