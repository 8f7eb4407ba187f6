"""nnU-Net inputs: a raw dataset folder (``imagesTr/``, ``imagesTs/``, ``labelsTr/``,
``dataset.json``) and a flat folder of channel files (``<case>_0000.nii.gz``,
``<case>_0001.nii.gz``, ..., what ``nnUNetv2_predict -i`` takes).

Channel ``i`` of case ``c`` is the file ``c_{i:04d}.nii.gz``. Which modality a channel
holds comes from the ``channel_names`` (or older ``modality``) entry of ``dataset.json``
(matched through the modality aliases of :mod:`duetseg.data.modalities`); without one, from
``ReadOptions.channels`` (for prediction: the channels the run was trained on, else its
modality order), else the requested names must be channel indices such as ``"0000"``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from duetseg.data.layouts import CaseSpec, ReadOptions, single_file
from duetseg.data.modalities import canonical_modality
from duetseg.errors import InputError

__all__ = ["channel_of_file", "discover_nnunet", "discover_nnunet_flat", "is_nnunet",
           "is_nnunet_flat"]

_NNUNET_RE = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})\.nii(\.gz)?$", re.IGNORECASE)
_NIFTI_RE = re.compile(r"\.nii(\.gz)?$", re.IGNORECASE)


def channel_of_file(name: str) -> int | None:
    """The channel index of an nnU-Net image file name (``case_0001.nii.gz`` -> 1), else None."""
    match = _NNUNET_RE.match(name)
    return int(match.group("channel")) if match else None


def is_nnunet(root: Path) -> bool:
    """A folder with ``imagesTr/`` or ``imagesTs/``."""
    return root.is_dir() and ((root / "imagesTr").is_dir() or (root / "imagesTs").is_dir())


def _nifti_files(folder: Path) -> list[Path]:
    return [p for p in sorted(folder.iterdir())
            if p.is_file() and not p.name.startswith(".") and _NIFTI_RE.search(p.name)]


def is_nnunet_flat(root: Path) -> bool:
    """A folder of NIfTI files all named ``<case>_<4 digits>.nii(.gz)``, no case folders."""
    if not root.is_dir() or any(p.is_dir() and not p.name.startswith(".")
                                for p in root.iterdir()):
        return False
    files = _nifti_files(root)
    return bool(files) and all(_NNUNET_RE.match(p.name) for p in files)


def _channel_names(meta_dir: Path) -> tuple[dict[int, str], Path]:
    """``dataset.json``'s channel index -> name (empty without the file), and its path."""
    meta_path = meta_dir / "dataset.json"
    if not meta_path.exists():
        return {}, meta_path
    try:
        meta = json.loads(meta_path.read_text())
        raw = meta.get("channel_names") or meta.get("modality") or {}
        return {int(k): str(v) for k, v in raw.items()}, meta_path
    except (json.JSONDecodeError, OSError, AttributeError, ValueError) as exc:
        raise InputError(f"unreadable dataset.json: {exc}", file=meta_path) from exc


def _channels(meta_dir: Path, modalities: list[str],
              options: ReadOptions) -> dict[str, int | None]:
    """Map each requested modality to its channel index (None: unknown, allowed)."""
    names, meta_path = _channel_names(meta_dir)
    lookup = {canonical_modality(v): k for k, v in names.items()}
    given = options.channels or {}
    channels: dict[str, int | None] = {}
    for mod in modalities:
        if canonical_modality(mod) in lookup:
            channels[mod] = lookup[canonical_modality(mod)]
        elif mod.isdigit():
            channels[mod] = int(mod)
        elif not names and mod in given:
            channels[mod] = given[mod]
        elif options.allow_missing:
            channels[mod] = None
        else:
            raise InputError(f"requested modality {mod!r} not present; channel_names: "
                             f"{names or '(no dataset.json: give channel indices like 0000)'}",
                             file=meta_path)
    return channels


def _read_channels(image_dir: Path, label_dir: Path | None, channels: dict[str, int | None],
                   options: ReadOptions) -> list[CaseSpec]:
    """The cases of one folder of channel files (labels, if any, in ``label_dir``)."""
    files: dict[str, dict[int, list[Path]]] = {}
    for path in _nifti_files(image_dir):
        match = _NNUNET_RE.match(path.name)
        if match:
            per_case = files.setdefault(match.group("case"), {})
            per_case.setdefault(int(match.group("channel")), []).append(path)
    present = {ch for per_case in files.values() for ch in per_case}
    for mod, ch in channels.items():
        if not options.allow_missing and files and ch not in present:
            raise InputError(f"requested modality {mod!r} (channel {ch:04d}) not present in "
                             f"any case; channels found: {sorted(present)}", file=image_dir)
    specs = []
    for case, per_case in sorted(files.items()):
        images, missing = {}, {}
        for mod, ch in channels.items():
            if ch is None or ch not in per_case:
                expected = image_dir if ch is None else image_dir / f"{case}_{ch:04d}.nii.gz"
                if not options.allow_missing:
                    raise InputError(f"missing modality {mod!r} (channel {ch:04d})", case=case,
                                     file=expected)
                missing[mod] = expected
                continue
            images[mod] = single_file(per_case[ch], case, f"channel {ch:04d}")
        labels = [] if label_dir is None else [label_dir / f"{case}{ext}"
                                               for ext in (".nii.gz", ".nii")]
        labels = [p for p in labels if p.is_file()]
        label = single_file(labels, case, "the label") if labels else None
        specs.append(CaseSpec(case, images, label, missing))
    return specs


def discover_nnunet(root: Path, modalities: list[str], options: ReadOptions) -> list[CaseSpec]:
    """The cases of an nnU-Net raw dataset and their labels (``labelsTr/``, ``labelsTs/``).

    ``options.split == "train"`` reads ``imagesTr/`` (else ``imagesTs/`` when that is all
    there is); ``"test"`` (prediction) reads ``imagesTs/`` (else ``imagesTr/``).

    Args:
        root: the dataset folder (with an optional ``dataset.json``).
        modalities: requested modality names, matched against the ``channel_names`` of
            ``dataset.json``, or channel indices such as ``"0000"``.
        options: ``allow_missing``, ``split`` and ``channels`` (see :class:`ReadOptions`).

    Returns:
        One :class:`CaseSpec` per case (not yet checked for existing files or safe names).

    Raises:
        InputError: unreadable ``dataset.json``, requested modality absent, missing channel, or
            several files for one.
    """
    order = ("Ts", "Tr") if options.split == "test" else ("Tr", "Ts")
    split = order[0] if (root / f"images{order[0]}").is_dir() else order[1]
    channels = _channels(root, modalities, options)
    return _read_channels(root / f"images{split}", root / f"labels{split}", channels, options)


def discover_nnunet_flat(root: Path, modalities: list[str],
                         options: ReadOptions) -> list[CaseSpec]:
    """The cases of a flat folder of nnU-Net channel files (no labels).

    Args:
        root: the folder; a ``dataset.json`` in it names the channels.
        modalities: requested modality names (see :func:`discover_nnunet`).
        options: ``allow_missing`` and ``channels`` (see :class:`ReadOptions`).

    Returns:
        One unlabelled :class:`CaseSpec` per case.

    Raises:
        InputError: as :func:`discover_nnunet`.
    """
    return _read_channels(root, None, _channels(root, modalities, options), options)
