"""Readers of the input layouts: BraTS case folders and CSV manifests (nnU-Net folders are
in :mod:`duetseg.data.nnunet_layout`).

Each layout has an ``is_<layout>(root)`` test and a ``discover_<layout>(root, modalities,
options)`` reader returning :class:`CaseSpec` objects; they are registered, with their
precedence, in :data:`duetseg.data.discovery.LAYOUT_REGISTRY`, which is what callers use.
Modality names are matched through the alias table of :mod:`duetseg.data.modalities`
(``t1ce`` = ``t1c``, ``t2`` = ``t2w``, ``flair`` = ``t2f`` = ``fla``, ``t1`` = ``t1n``).
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

from duetseg.data.modalities import canonical_modality
from duetseg.errors import InputError

__all__ = ["CaseSpec", "ReadOptions", "discover_brats", "discover_csv", "is_brats", "is_csv",
           "single_file"]

_NIFTI_RE = re.compile(r"^(?P<stem>.+?)\.nii(\.gz)?$", re.IGNORECASE)
_LABEL = "seg"  # BraTS label suffix: <case>_seg (2018-2021), <case>-seg (2023+)


@dataclass(frozen=True)
class ReadOptions:
    """How to read a dataset, beyond which modalities.

    Attributes:
        allow_missing: a case may lack some modalities (recorded in ``CaseSpec.missing``).
        split: ``"train"`` or ``"test"``: the part to read where a layout has both (an
            nnU-Net dataset with ``imagesTr/`` and ``imagesTs/``); others ignore it.
        channels: requested modality -> nnU-Net channel index, used when a folder has no
            ``dataset.json`` (prediction: the trained run's channels, else its modality
            order, as ``nnUNetv2_predict`` assumes); None: channels must be named.
    """

    allow_missing: bool = False
    split: str = "train"
    channels: dict[str, int] | None = None


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
    """Map canonical modality (or ``"seg"``) to the NIfTI files of one BraTS case folder.

    A file belongs to the case when its name is ``<case>_<suffix>`` (BraTS 2018-2021) or
    ``<case>-<suffix>`` (BraTS 2023+), compared case-insensitively; the suffix is mapped to
    its canonical modality (``t1c`` -> ``t1ce``).
    """
    case = folder.name.lower()
    found: dict[str, list[Path]] = {}
    for path in sorted(folder.iterdir()):
        stem = _nifti_stem(path.name)
        if not (path.is_file() and stem):
            continue
        stem = stem.lower()
        if len(stem) > len(case) + 1 and stem.startswith(case) and stem[len(case)] in "_-":
            found.setdefault(canonical_modality(stem[len(case) + 1:]), []).append(path)
    return found


def _expected_file(folder: Path, files: dict[str, list[Path]], mod: str) -> Path:
    """Where a missing modality's file was expected, in the folder's own naming."""
    sep = "-" if any(p.name[len(folder.name)] == "-" for ps in files.values() for p in ps) \
        else "_"
    return folder / f"{folder.name}{sep}{mod}.nii.gz"


def single_file(paths: list[Path], case: str, what: str) -> Path:
    """The one file of ``paths`` (never empty).

    Raises:
        InputError: there are several (names the case and the files).
    """
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


def is_csv(root: Path) -> bool:
    """A ``.csv`` file."""
    return root.is_file() and root.suffix.lower() == ".csv"


def discover_brats(root: Path, modalities: list[str], options: ReadOptions) -> list[CaseSpec]:
    """The cases of a BraTS-style folder (``<root>/<case>/<case>_<modality>.nii.gz``).

    BraTS 2018-2021 names (``<case>_t1ce``, ``_t2``, ``_flair``, ``_t1``, label ``_seg``)
    and BraTS 2023+ names (``<case>-t1c``, ``-t2w``, ``-t2f``, ``-t1n``, label ``-seg``)
    are both read; suffixes are matched case-insensitively and through the modality
    aliases of :mod:`duetseg.data.modalities`.

    Args:
        root: the folder of case folders.
        modalities: requested modality names.
        options: ``allow_missing``: a case may lack some modalities.

    Returns:
        One :class:`CaseSpec` per case (not yet checked for existing files or safe names).

    Raises:
        InputError: requested modality absent, missing modality, or several files for one
            (e.g. both ``_t1ce`` and ``_t1c``).
    """
    allow_missing = options.allow_missing
    folders = [p for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".")]
    indexed = [(f, _brats_files(f)) for f in folders]
    indexed = [(f, files) for f, files in indexed if files]
    available = sorted({k for _, files in indexed for k in files} - {_LABEL})
    for mod in modalities:
        if (not allow_missing and indexed
                and all(canonical_modality(mod) not in files for _, files in indexed)):
            raise InputError(f"requested modality {mod!r} not present in any case; "
                             f"available: {available}", file=root)
    specs = []
    for folder, files in indexed:
        case = folder.name
        images, missing = {}, {}
        for mod in modalities:
            key = canonical_modality(mod)
            if key not in files:
                expected = _expected_file(folder, files, mod)
                if not allow_missing:
                    raise InputError(f"missing modality {mod!r}", case=case, file=expected)
                missing[mod] = expected
                continue
            images[mod] = single_file(files[key], case, f"modality {mod!r}")
        label = single_file(files[_LABEL], case, "the label") if _LABEL in files else None
        specs.append(CaseSpec(case, images, label, missing))
    return specs


def discover_csv(path: Path, modalities: list[str], options: ReadOptions) -> list[CaseSpec]:
    """The cases of a CSV manifest: a ``case`` column, a column per modality, ``label``.

    Args:
        path: the manifest; relative file paths are relative to its folder.
        modalities: requested modality names, matched case-insensitively (and through the
            modality aliases) against the columns.
        options: ``allow_missing``: a case may lack some modalities (an empty cell).

    Returns:
        One :class:`CaseSpec` per case (not yet checked for existing files or safe names).

    Raises:
        InputError: unreadable manifest, no ``case`` column, requested modality absent, empty
            cell, or duplicate case.
    """
    allow_missing = options.allow_missing
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
    for h in header:  # modality columns also by canonical name (t1c -> t1ce)
        columns.setdefault(canonical_modality(h), h)
    if "case" not in columns:
        raise InputError(f"CSV manifest needs a 'case' column; columns: {header}", file=path)
    for mod in modalities:
        if canonical_modality(mod) not in columns and not allow_missing:
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
            column = columns.get(canonical_modality(mod))
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
