"""Readers of the input layouts: BraTS case folders, nnU-Net raw datasets, CSV manifests.

Each layout has an ``is_<layout>(root)`` test and a ``discover_<layout>(root, modalities,
allow_missing)`` reader returning :class:`CaseSpec` objects; they are registered, with their
precedence, in :data:`duetseg.data.discovery.LAYOUT_REGISTRY`, which is what callers use.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from duetseg.errors import InputError

__all__ = ["CaseSpec", "discover_brats", "discover_csv", "discover_nnunet", "is_brats",
           "is_csv", "is_nnunet"]

_NIFTI_RE = re.compile(r"^(?P<stem>.+?)\.nii(\.gz)?$", re.IGNORECASE)
_NNUNET_RE = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})\.nii(\.gz)?$", re.IGNORECASE)


@dataclass(frozen=True)
class CaseSpec:
    """The files of one case.

    Attributes:
        case: case identifier.
        images: modality name -> image file, in the requested modality order.
        label: label file, or None for an unlabelled case.
        missing: modality name -> where its file was expected (the CSV manifest for an
            empty cell or column), for requested modalities the case lacks; only ever
            non-empty with ``discover_cases(..., allow_missing=True)``.
    """

    case: str
    images: dict[str, Path]
    label: Path | None
    missing: dict[str, Path] = field(default_factory=dict)


def _nifti_stem(name: str) -> str | None:
    match = _NIFTI_RE.match(name)
    return match.group("stem") if match else None


def _brats_files(folder: Path) -> dict[str, list[Path]]:
    """Map lower-case suffix (after ``<case>_``) to the NIfTI files of one BraTS folder."""
    prefix = folder.name.lower() + "_"
    found: dict[str, list[Path]] = {}
    for path in sorted(folder.iterdir()):
        stem = _nifti_stem(path.name)
        if path.is_file() and stem and stem.lower().startswith(prefix):
            found.setdefault(stem[len(prefix):].lower(), []).append(path)
    return found


def _single(paths: list[Path], case: str, what: str) -> Path:
    if len(paths) > 1:
        raise InputError(f"several files for {what}: {[p.name for p in paths]}", case=case,
                         file=paths[0])
    return paths[0]


def is_brats(root: Path) -> bool:
    """A folder holding case folders with ``<case>_<modality>.nii.gz`` files."""
    return root.is_dir() and any(
        sub.is_dir() and not sub.name.startswith(".") and bool(_brats_files(sub))
        for sub in root.iterdir()
    )


def is_nnunet(root: Path) -> bool:
    """A folder with ``imagesTr/`` or ``imagesTs/``."""
    return root.is_dir() and ((root / "imagesTr").is_dir() or (root / "imagesTs").is_dir())


def is_csv(root: Path) -> bool:
    """A ``.csv`` file."""
    return root.is_file() and root.suffix.lower() == ".csv"


def discover_brats(root: Path, modalities: list[str], allow_missing: bool) -> list[CaseSpec]:
    """The cases of a BraTS-style folder (``<root>/<case>/<case>_<modality>.nii.gz``).

    The label is ``<case>_seg.nii.gz``; suffixes are matched case-insensitively.

    Args:
        root: the folder of case folders.
        modalities: requested modality names, matched case-insensitively.
        allow_missing: a case may lack some modalities (recorded in ``CaseSpec.missing``).

    Returns:
        One :class:`CaseSpec` per case (not yet checked for existing files or safe names).

    Raises:
        InputError: requested modality absent, missing modality, or several files for one.
    """
    folders = [p for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".")]
    indexed = [(f, _brats_files(f)) for f in folders]
    indexed = [(f, files) for f, files in indexed if files]
    available = sorted({k for _, files in indexed for k in files} - {"seg"})
    for mod in modalities:
        if (not allow_missing and indexed
                and all(mod.lower() not in files for _, files in indexed)):
            raise InputError(f"requested modality {mod!r} not present in any case; "
                             f"available: {available}", file=root)
    specs = []
    for folder, files in indexed:
        case = folder.name
        images, missing = {}, {}
        for mod in modalities:
            if mod.lower() not in files:
                expected = folder / f"{case}_{mod}.nii.gz"
                if not allow_missing:
                    raise InputError(f"missing modality {mod!r}", case=case, file=expected)
                missing[mod] = expected
                continue
            images[mod] = _single(files[mod.lower()], case, f"modality {mod!r}")
        label = _single(files["seg"], case, "the label") if "seg" in files else None
        specs.append(CaseSpec(case, images, label, missing))
    return specs


def _nnunet_channels(root: Path, modalities: list[str],
                     allow_missing: bool) -> dict[str, int | None]:
    """Map each requested modality to its nnU-Net channel index (None: unknown, allowed)."""
    names: dict[int, str] = {}
    meta_path = root / "dataset.json"
    if meta_path.exists():
        try:
            meta = json.loads(meta_path.read_text())
        except (json.JSONDecodeError, OSError) as exc:
            raise InputError(f"unreadable dataset.json: {exc}", file=meta_path) from exc
        raw = meta.get("channel_names") or meta.get("modality") or {}
        names = {int(k): str(v) for k, v in raw.items()}
    lookup = {v.lower(): k for k, v in names.items()}
    channels: dict[str, int | None] = {}
    for mod in modalities:
        if mod.lower() in lookup:
            channels[mod] = lookup[mod.lower()]
        elif mod.isdigit():
            channels[mod] = int(mod)
        elif allow_missing:
            channels[mod] = None
        else:
            raise InputError(f"requested modality {mod!r} not present; channel_names: "
                             f"{names or '(no dataset.json: give channel indices like 0000)'}",
                             file=meta_path)
    return channels


def discover_nnunet(root: Path, modalities: list[str], allow_missing: bool) -> list[CaseSpec]:
    """The cases of an nnU-Net raw dataset: ``imagesTr/`` (else ``imagesTs/``) and labels.

    Args:
        root: the dataset folder (with an optional ``dataset.json``).
        modalities: requested modality names, matched case-insensitively against the
            ``channel_names`` of ``dataset.json``, or channel indices such as ``"0000"``.
        allow_missing: a case may lack some modalities (recorded in ``CaseSpec.missing``).

    Returns:
        One :class:`CaseSpec` per case (not yet checked for existing files or safe names).

    Raises:
        InputError: unreadable ``dataset.json``, requested modality absent, missing channel, or
            several files for one.
    """
    split = "Tr" if (root / "imagesTr").is_dir() else "Ts"
    image_dir, label_dir = root / f"images{split}", root / f"labels{split}"
    channels = _nnunet_channels(root, modalities, allow_missing)
    files: dict[str, dict[int, list[Path]]] = {}
    for path in sorted(image_dir.iterdir()):
        match = _NNUNET_RE.match(path.name)
        if match and path.is_file():
            per_case = files.setdefault(match.group("case"), {})
            per_case.setdefault(int(match.group("channel")), []).append(path)
    present = {ch for per_case in files.values() for ch in per_case}
    for mod, ch in channels.items():
        if not allow_missing and files and ch not in present:
            raise InputError(f"requested modality {mod!r} (channel {ch:04d}) not present in "
                             f"any case", file=image_dir)
    specs = []
    for case, per_case in sorted(files.items()):
        images, missing = {}, {}
        for mod, ch in channels.items():
            if ch is None or ch not in per_case:
                expected = image_dir if ch is None else image_dir / f"{case}_{ch:04d}.nii.gz"
                if not allow_missing:
                    raise InputError(f"missing modality {mod!r} (channel {ch:04d})", case=case,
                                     file=expected)
                missing[mod] = expected
                continue
            images[mod] = _single(per_case[ch], case, f"channel {ch:04d}")
        labels = [label_dir / f"{case}{ext}" for ext in (".nii.gz", ".nii")]
        labels = [p for p in labels if p.is_file()]
        specs.append(CaseSpec(case, images, _single(labels, case, "the label") if labels
                              else None, missing))
    return specs


def discover_csv(path: Path, modalities: list[str], allow_missing: bool) -> list[CaseSpec]:
    """The cases of a CSV manifest: a ``case`` column, a column per modality, ``label``.

    Args:
        path: the manifest; relative file paths are relative to its folder.
        modalities: requested modality names, matched case-insensitively against the columns.
        allow_missing: a case may lack some modalities (recorded in ``CaseSpec.missing``).

    Returns:
        One :class:`CaseSpec` per case (not yet checked for existing files or safe names).

    Raises:
        InputError: unreadable manifest, no ``case`` column, requested modality absent, empty
            cell, or duplicate case.
    """
    base = path.parent
    try:
        with path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            header = [h.strip() for h in (reader.fieldnames or [])]
            rows = [{(k or "").strip(): (v or "").strip() for k, v in row.items()}
                    for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"unreadable CSV manifest: {exc}", file=path) from exc
    columns = {h.lower(): h for h in header}
    if "case" not in columns:
        raise InputError(f"CSV manifest needs a 'case' column; columns: {header}", file=path)
    for mod in modalities:
        if mod.lower() not in columns and not allow_missing:
            raise InputError(f"requested modality {mod!r} not present; columns: {header}",
                             file=path)
    label_col = columns.get("label")
    specs: dict[str, CaseSpec] = {}
    for row in rows:
        case = row.get(columns["case"], "")
        if not case:
            continue
        if case in specs:
            raise InputError("duplicate case name in CSV manifest", case=case, file=path)
        images, missing = {}, {}
        for mod in modalities:
            column = columns.get(mod.lower())
            cell = row.get(column, "") if column else ""
            if not cell:
                if not allow_missing:
                    raise InputError(f"empty cell for modality {mod!r}", case=case, file=path)
                missing[mod] = path
                continue
            images[mod] = base / cell if not Path(cell).is_absolute() else Path(cell)
        cell = row.get(label_col, "") if label_col else ""
        label = (base / cell if not Path(cell).is_absolute() else Path(cell)) if cell else None
        specs[case] = CaseSpec(case, images, label, missing)
    return [specs[c] for c in sorted(specs)]
