"""What a method's outputs are, as data: :class:`OutputSpec` (torch-free).

A method declares its outputs with :meth:`duetseg.methods.base.Method.outputs`; ``duetseg
evaluate`` writes them to ``summary.json`` under ``"output_specs"`` and the reports read
them back (:func:`specs_from_summary`). Summaries written before that key existed are read
by parsing the output names and their descriptions, in :func:`legacy_output_specs` only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, Literal

__all__ = ["OutputKind", "OutputSpec", "branch_modalities", "legacy_output_specs",
           "specs_from_summary"]

OutputKind = Literal["branch", "ensemble", "single"]

_LEGACY_BRANCH_PREFIX = "branch_"
_LEGACY_MODALITY_PREFIX = "branch reading "


@dataclass(frozen=True)
class OutputSpec:
    """One output of a method.

    Attributes:
        name: the output's name (a key of ``Method.output_probabilities``).
        kind: ``branch`` (one modality branch of a multi-branch network), ``ensemble`` (a
            combination of the branches) or ``single`` (anything else, e.g. the prediction
            of a single network).
        modality: the modality a branch reads; None when the output reads no single one.
        primary: whether this is the method's primary output.
    """

    name: str
    kind: OutputKind
    modality: str | None = None
    primary: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The spec as written to ``summary.json``."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OutputSpec:
        """A spec from its ``summary.json`` form (see :meth:`to_dict`)."""
        modality = data.get("modality")
        return cls(name=str(data["name"]), kind=data["kind"],
                   modality=None if modality is None else str(modality),
                   primary=bool(data.get("primary", False)))


def branch_modalities(specs: Iterable[OutputSpec]) -> dict[str, str | None]:
    """Branch output name -> the modality it reads, in the order of ``specs``."""
    return {s.name: s.modality for s in specs if s.kind == "branch"}


def legacy_output_specs(names: Iterable[str], descriptions: dict[str, Any],
                        primary: str) -> list[OutputSpec]:
    """Specs of a summary without ``"output_specs"``, from names and descriptions.

    The reading used before methods declared their outputs: ``branch_*`` names are branches,
    ``ensemble`` is the ensemble, anything else is single; a description
    ``"branch reading <modality>"`` gives the modality.

    Args:
        names: output names (e.g. those of ``metrics.csv``, first-seen order).
        descriptions: the summary's ``"outputs"`` (name -> description); names only found
            here follow ``names``.
        primary: the primary output's name.

    Returns:
        One spec per distinct name.
    """
    specs = []
    for name in dict.fromkeys([*names, *descriptions]):
        if name.startswith(_LEGACY_BRANCH_PREFIX):
            kind: OutputKind = "branch"
        else:
            kind = "ensemble" if name == "ensemble" else "single"
        desc = str(descriptions.get(name, ""))
        modality = (desc[len(_LEGACY_MODALITY_PREFIX):].strip()
                    if desc.startswith(_LEGACY_MODALITY_PREFIX) else None)
        specs.append(OutputSpec(name, kind, modality, name == primary))
    return specs


def specs_from_summary(summary: dict[str, Any], names: Iterable[str],
                       primary: str) -> list[OutputSpec]:
    """The output specs of an evaluation summary.

    Args:
        summary: the contents of ``summary.json`` (may be empty).
        names: output names seen in ``metrics.csv`` (used by the legacy fallback only).
        primary: the primary output's name (legacy fallback only).

    Returns:
        The specs of ``summary["output_specs"]``, else :func:`legacy_output_specs`.
    """
    stored = summary.get("output_specs")
    if stored is not None:
        return [OutputSpec.from_dict(d) for d in stored]
    descriptions = summary.get("outputs") or {}
    return legacy_output_specs(names, dict(descriptions), primary)
