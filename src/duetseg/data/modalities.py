"""Modality names and their aliases: the one table every input layout matches names with.

Datasets name the same MRI sequence differently: BraTS 2018-2021 write ``t1ce``, ``t2``,
``flair``, ``t1``; BraTS 2023 and later write ``t1c``, ``t2w``, ``t2f``, ``t1n``; some
toolkits write ``fla`` for FLAIR. A requested modality matches a file, CSV column or
nnU-Net channel name when both have the same canonical name (case-insensitive), so a run
trained on ``t1ce t2`` reads a case named the BraTS 2023 way, and ``prepare --modalities
t1ce t2`` reads such a folder. Names not in the table match only themselves (``ct``,
``pet``). Settings keyed by modality name are turned into settings by channel index here too.
"""

from __future__ import annotations

from duetseg.errors import ConfigError

__all__ = ["MODALITY_ALIASES", "canonical_modality", "modality_names", "inversion_channels"]

# canonical name -> the other names of the same sequence
MODALITY_ALIASES: dict[str, tuple[str, ...]] = {
    "t1ce": ("t1c",),  # T1 after contrast (gadolinium)
    "t2": ("t2w",),  # T2-weighted
    "flair": ("t2f", "fla"),  # T2 fluid-attenuated inversion recovery
    "t1": ("t1n",),  # native T1
}

_CANONICAL: dict[str, str] = {
    name: canonical for canonical, aliases in MODALITY_ALIASES.items()
    for name in (canonical, *aliases)
}


def canonical_modality(name: str) -> str:
    """The canonical, lower-case name of a modality (``"T1c"`` -> ``"t1ce"``).

    Args:
        name: a modality name as written in a file name, column or command line.

    Returns:
        The canonical name of :data:`MODALITY_ALIASES`, or ``name`` in lower case when it is
        not in the table.
    """
    key = name.strip().lower()
    return _CANONICAL.get(key, key)


def modality_names(name: str) -> tuple[str, ...]:
    """Every name of ``name``'s modality, canonical first (``"t2w"`` -> ``("t2", "t2w")``)."""
    canonical = canonical_modality(name)
    return (canonical, *MODALITY_ALIASES.get(canonical, ()))


def inversion_channels(probs: dict[str, float], modalities: list[str]) -> dict[int, float]:
    """``train.contrast_inversion`` (modality -> probability) as channel -> probability.

    Args:
        probs: the config's mapping.
        modalities: the run's modalities, in channel order.

    Returns:
        The mapping by channel index.

    Raises:
        ConfigError: a modality the run does not read.
    """
    unknown = sorted(set(probs) - set(modalities))
    if unknown:
        raise ConfigError(f"train.contrast_inversion names {unknown}, which the run does not "
                          f"read (its modalities: {modalities})")
    return {modalities.index(m): float(p) for m, p in probs.items()}
