"""Find the cases of a dataset in one of its layouts: BraTS folders, nnU-Net raw dataset,
flat folder of nnU-Net channel files, CSV manifest.

Every layout yields the same thing: a sorted list of :class:`CaseSpec`, one per case, with
one image file per requested modality (in the requested order) and an optional label file.
With ``allow_missing`` (prediction by a run trained with modality dropout) a case may lack
some modalities: ``images`` then holds the present ones and ``missing`` the others.

The layouts are the entries of :data:`LAYOUT_REGISTRY` (name -> :class:`Layout`: how to
recognise it, how to list its cases). :func:`detect_layout`, :func:`discover_cases`, the
config's ``prepare.layout`` values and the CLI's ``--layout`` help all read it, so a new
layout is one function pair and one entry there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from duetseg.data.layouts import (
    CaseSpec,
    ReadOptions,
    discover_brats,
    discover_csv,
    is_brats,
    is_csv,
)
from duetseg.data.modalities import canonical_modality
from duetseg.data.nnunet_layout import (
    discover_nnunet,
    discover_nnunet_flat,
    is_nnunet,
    is_nnunet_flat,
)
from duetseg.errors import InputError

__all__ = ["CaseSpec", "LAYOUTS", "LAYOUT_REGISTRY", "Layout", "ReadOptions", "detect_layout",
           "discover_cases"]


@dataclass(frozen=True)
class Layout:
    """One input layout.

    Attributes:
        detect: ``detect(root)``: True when ``root`` (an existing path) is in this layout.
        discover: ``discover(root, modalities, options)`` (:class:`ReadOptions`): the
            cases, unsorted and unchecked (:func:`discover_cases` sorts and checks them).
        description: what such an input looks like, for the "unknown layout" message.
        precedence: :func:`detect_layout` tries lower values first (a specific layout, such
            as nnU-Net's ``imagesTr/``, before a general one, such as any case folders).
    """

    detect: Callable[[Path], bool]
    discover: Callable[[Path, list[str], ReadOptions], list[CaseSpec]]
    description: str
    precedence: int


LAYOUT_REGISTRY: dict[str, Layout] = {
    "brats": Layout(is_brats, discover_brats, "a folder of case folders holding "
                    "<case>_<modality>.nii.gz (BraTS)", precedence=2),
    "nnunet": Layout(is_nnunet, discover_nnunet, "a folder with imagesTr/ (nnU-Net)",
                     precedence=1),
    "csv": Layout(is_csv, discover_csv, "a .csv manifest", precedence=0),
    "nnunet_flat": Layout(is_nnunet_flat, discover_nnunet_flat, "a folder of nnU-Net "
                          "channel files <case>_0000.nii.gz", precedence=3),
}
LAYOUTS: tuple[str, ...] = tuple(LAYOUT_REGISTRY)


def detect_layout(root: Path) -> str:
    """Guess the layout of ``root``.

    The layouts of :data:`LAYOUT_REGISTRY` are tried by precedence; the first that
    recognises ``root`` wins.

    Args:
        root: a CSV manifest, an nnU-Net raw dataset folder, a flat folder of nnU-Net
            channel files or a BraTS-style folder.

    Returns:
        A :data:`LAYOUT_REGISTRY` name: ``"csv"``, ``"nnunet"``, ``"brats"`` or
        ``"nnunet_flat"``.

    Raises:
        InputError: the path does not exist or matches no layout.
    """
    root = Path(root)
    if not root.exists():
        raise InputError("input path does not exist", file=root)
    by_precedence = sorted(LAYOUT_REGISTRY.items(), key=lambda item: item[1].precedence)
    for name, layout in by_precedence:
        if layout.detect(root):
            return name
    if root.is_file():
        raise InputError("a file input must be a .csv manifest", file=root)
    described = [layout.description for _, layout in by_precedence]
    raise InputError(
        f"unknown dataset layout: expected {', '.join(described[:-1])} or {described[-1]}",
        file=root,
    )


# suffixes duetseg appends to a case name for its other files (cache label, predict outputs)
_DERIVED_SUFFIXES = ("_seg", "_prob", "_disagreement")
_RESERVED = {"dataset"}  # the cache's dataset.json


def _check_case_names(specs: list[CaseSpec], source: Path) -> None:
    """Case names become file names: refuse those that are unsafe or would clash."""
    by_lower: dict[str, str] = {}
    for spec in specs:
        name = spec.case
        if (name != name.strip() or name.startswith(".") or "/" in name or "\\" in name
                or "\0" in name):
            raise InputError("case name is not a safe file name (no path separators, no "
                             "leading dot or surrounding spaces)", case=name, file=source)
        if name.lower() in _RESERVED:
            raise InputError("case name is reserved (the cache's own dataset.json)", case=name,
                             file=source)
        other = by_lower.setdefault(name.lower(), name)
        if other != name:
            raise InputError(f"case names {other!r} and {name!r} differ only in upper/lower "
                             f"case; their files would overwrite each other on "
                             f"case-insensitive file systems", case=name, file=source)
    for name, original in by_lower.items():
        for suffix in _DERIVED_SUFFIXES:
            if name.endswith(suffix) and name[: -len(suffix)] in by_lower:
                raise InputError(f"case name clashes with the {suffix!r} files of case "
                                 f"{by_lower[name[: -len(suffix)]]!r}", case=original,
                                 file=source)


def discover_cases(root: Path, modalities: list[str], layout: str = "auto",
                   require_labels: bool = False, allow_missing: bool = False,
                   split: str = "train",
                   channels: dict[str, int] | None = None) -> list[CaseSpec]:
    """List the cases of a dataset.

    Args:
        root: dataset folder or CSV manifest.
        modalities: requested modality names (matched case-insensitively and through the
            aliases of :mod:`duetseg.data.modalities`; nnU-Net also accepts channel indices
            such as ``"0000"``).
        layout: ``"auto"`` (:func:`detect_layout`) or a :data:`LAYOUT_REGISTRY` name
            (``"brats"``, ``"nnunet"``, ``"nnunet_flat"``, ``"csv"``).
        require_labels: if True, every case must have a label.
        allow_missing: a case may lack some of ``modalities`` (recorded in
            :attr:`CaseSpec.missing`; a modality may be absent from every case) but needs
            at least one of them.
        split: ``"train"`` or ``"test"`` (prediction): which images an nnU-Net dataset with
            both ``imagesTr/`` and ``imagesTs/`` gives.
        channels: modality -> nnU-Net channel index for folders without ``dataset.json``.

    Returns:
        Case specifications sorted by case name.

    Raises:
        InputError: unknown layout, requested modality absent, missing modality or label
            file (with ``allow_missing``: a case with none of the modalities), duplicate case
            names (also ones differing only in upper/lower case), case names that are unsafe
            as file names or clash with derived files (``<case>_seg``), or an empty dataset.
    """
    root = Path(root)
    if layout == "auto":
        layout = detect_layout(root)
    elif layout not in LAYOUT_REGISTRY:
        raise InputError(f"unknown layout {layout!r}; choose one of {tuple(LAYOUT_REGISTRY)}",
                         file=root)
    if not root.exists():
        raise InputError("input path does not exist", file=root)
    if len({canonical_modality(m) for m in modalities}) != len(modalities):
        raise InputError(f"modalities must be distinct (aliases such as t1ce and t1c name "
                         f"the same one): {modalities}")
    options = ReadOptions(allow_missing=allow_missing, split=split, channels=channels)
    specs = LAYOUT_REGISTRY[layout].discover(root, modalities, options)
    if not specs:
        raise InputError(f"empty dataset: no cases found (layout {layout!r})", file=root)
    _check_case_names(specs, root)
    for spec in specs:
        if not spec.images:
            raise InputError(f"none of the modalities {list(modalities)} is present (at least "
                             f"one is needed)", case=spec.case,
                             file=next(iter(spec.missing.values()), root))
        for path in [*spec.images.values(), *([spec.label] if spec.label else [])]:
            if not path.is_file():
                raise InputError("file not found", case=spec.case, file=path)
        if require_labels and spec.label is None:
            raise InputError("label required but missing", case=spec.case)
    return sorted(specs, key=lambda s: s.case)
