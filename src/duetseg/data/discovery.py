"""Find the cases of a dataset in one of three layouts: BraTS folders, nnU-Net raw, CSV.

Every layout yields the same thing: a sorted list of :class:`CaseSpec`, one per case, with
one image file per requested modality (in the requested order) and an optional label file.
With ``allow_missing`` (prediction by a run trained with modality dropout) a case may lack
some modalities: ``images`` then holds the present ones and ``missing`` the others.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from duetseg.errors import InputError

__all__ = ["CaseSpec", "detect_layout", "discover_cases", "LAYOUTS"]

LAYOUTS = ("brats", "nnunet", "csv")
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


def detect_layout(root: Path) -> str:
    """Guess the layout of ``root``.

    Args:
        root: a CSV manifest, an nnU-Net raw dataset folder or a BraTS-style folder.

    Returns:
        ``"csv"``, ``"nnunet"`` or ``"brats"``.

    Raises:
        InputError: the path does not exist or matches no layout.
    """
    root = Path(root)
    if not root.exists():
        raise InputError("input path does not exist", file=root)
    if root.is_file():
        if root.suffix.lower() == ".csv":
            return "csv"
        raise InputError("a file input must be a .csv manifest", file=root)
    if (root / "imagesTr").is_dir() or (root / "imagesTs").is_dir():
        return "nnunet"
    for sub in root.iterdir():
        if sub.is_dir() and not sub.name.startswith(".") and _brats_files(sub):
            return "brats"
    raise InputError(
        "unknown dataset layout: expected a .csv manifest, a folder with imagesTr/ (nnU-Net) "
        "or a folder of case folders holding <case>_<modality>.nii.gz (BraTS)",
        file=root,
    )


def _single(paths: list[Path], case: str, what: str) -> Path:
    if len(paths) > 1:
        raise InputError(f"several files for {what}: {[p.name for p in paths]}", case=case,
                         file=paths[0])
    return paths[0]


def _discover_brats(root: Path, modalities: list[str], allow_missing: bool) -> list[CaseSpec]:
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


def _discover_nnunet(root: Path, modalities: list[str], allow_missing: bool) -> list[CaseSpec]:
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


def _discover_csv(path: Path, modalities: list[str], allow_missing: bool) -> list[CaseSpec]:
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
                   require_labels: bool = False, allow_missing: bool = False) -> list[CaseSpec]:
    """List the cases of a dataset.

    Args:
        root: dataset folder or CSV manifest.
        modalities: requested modality names (matched case-insensitively; nnU-Net also
            accepts channel indices such as ``"0000"``).
        layout: ``"auto"``, ``"brats"``, ``"nnunet"`` or ``"csv"``.
        require_labels: if True, every case must have a label.
        allow_missing: a case may lack some of ``modalities`` (recorded in
            :attr:`CaseSpec.missing`; a modality may be absent from every case) but needs
            at least one of them.

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
    elif layout not in LAYOUTS:
        raise InputError(f"unknown layout {layout!r}; choose one of {LAYOUTS}", file=root)
    if not root.exists():
        raise InputError("input path does not exist", file=root)
    if len({m.lower() for m in modalities}) != len(modalities):
        raise InputError(f"modalities must be distinct: {modalities}")
    if layout == "brats":
        specs = _discover_brats(root, modalities, allow_missing)
    elif layout == "nnunet":
        specs = _discover_nnunet(root, modalities, allow_missing)
    else:
        specs = _discover_csv(root, modalities, allow_missing)
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
