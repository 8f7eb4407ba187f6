"""The preprocessed-case cache: its layout, its fingerprint, and read access (``Cache``).

Layout::

    CACHE/dataset.json      format_version, fingerprint, settings, modalities, num_classes,
                            cases [{case, labelled}], source
    CACHE/<case>.npy        (C, X, Y, Z) float32
    CACHE/<case>_seg.npy    (X, Y, Z) uint8, labelled cases only
    CACHE/<case>.json       properties (see duetseg.data.preprocess) + "fingerprint" +
                            "source_stamp" (size and mtime of each source file)

:func:`duetseg.data.prepare.prepare_dataset` builds it.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from duetseg.config import PrepareConfig
from duetseg.data.geometry import load_original, spacing_of
from duetseg.data.preprocess import map_labels
from duetseg.errors import ConfigError

__all__ = ["FORMAT_VERSION", "fingerprint", "Cache", "open_cache", "take_channels",
           "load_original_label"]

FORMAT_VERSION = 1


def fingerprint(cfg: PrepareConfig) -> str:
    """SHA-256 of the canonical JSON of the settings that change the cached data.

    ``layout`` is left out: it only says how to find the files, not what is computed; so is
    a disabled ``registration``, which keeps caches made before it existed valid.
    """
    settings = cfg.model_dump(mode="json")
    settings.pop("layout", None)
    if not cfg.registration.enabled:
        settings.pop("registration", None)
    text = json.dumps({"format_version": FORMAT_VERSION, "settings": settings},
                      sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


class Cache:
    """Read access to a prepared cache.

    Args:
        root: the cache folder.

    Raises:
        ConfigError: no (or an incompatible) ``dataset.json``.
    """

    def __init__(self, root: Path):
        self.root = Path(root)
        meta_path = self.root / "dataset.json"
        if not meta_path.exists():
            raise ConfigError(f"{self.root} is not a prepared cache (no dataset.json); "
                              f"run 'duetseg prepare' first")
        try:
            self._meta = json.loads(meta_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{meta_path}: unreadable ({exc})") from exc
        if self._meta.get("format_version") != FORMAT_VERSION:
            raise ConfigError(f"{meta_path}: cache format {self._meta.get('format_version')} "
                              f"!= {FORMAT_VERSION}; prepare again")
        self.settings = PrepareConfig.model_validate(self._meta["settings"])
        self._labelled = {c["case"]: bool(c["labelled"]) for c in self._meta["cases"]}
        self._stored = list(self._meta["modalities"])  # the file's channels, by name
        self._channels: list[int] | None = None

    def __repr__(self) -> str:
        return f"Cache({str(self.root)!r}, {len(self.cases)} cases)"

    def __len__(self) -> int:
        return len(self._labelled)

    @property
    def cases(self) -> list[str]:
        """All case names, sorted."""
        return sorted(self._labelled)

    @property
    def labelled_cases(self) -> list[str]:
        """Names of the labelled cases, sorted."""
        return [c for c in self.cases if self._labelled[c]]

    @property
    def modalities(self) -> list[str]:
        """Modality names in channel order."""
        return list(self._meta["modalities"])

    @property
    def channels(self) -> list[int] | None:
        """Channels of the stored ``<case>.npy`` that :meth:`load_image` returns, in
        order; None for all of them (see :meth:`select`)."""
        return None if self._channels is None else list(self._channels)

    def select(self, modalities: Sequence[str]) -> Cache:
        """The same cache read as if it had been prepared with ``modalities`` only.

        The images hold only those channels, in the given order, and the settings and
        fingerprint are those of a cache of these modalities, so a model trained on the
        selection predicts from their files alone.

        Args:
            modalities: a non-empty subset of :attr:`modalities`, no name twice.

        Returns:
            A new :class:`Cache` on the same folder.

        Raises:
            ConfigError: an unknown or repeated name, an empty selection, or one without
                the registration reference of a registered cache.
        """
        names = [str(m) for m in modalities]
        unknown = [m for m in names if m not in self.modalities]
        if not names or unknown or len(set(names)) != len(names):
            raise ConfigError(f"modalities {names} are not a selection of the cache "
                              f"{self.root}'s modalities {self.modalities} (each at most once)")
        settings = self.settings.model_dump(mode="json")
        if self.settings.registration.enabled:
            from duetseg.data.registration import reference_modality

            reference = reference_modality(self.settings)
            if reference not in names:
                raise ConfigError(f"modalities {names} leave out {reference!r}, the "
                                  f"registration reference of the cache {self.root}")
            settings["registration"]["reference"] = reference
        settings["modalities"] = names
        settings["normalization"] = {m: v for m, v in settings["normalization"].items()
                                     if m in names}
        view = copy.copy(self)
        view.settings = PrepareConfig.model_validate(settings)
        view._meta = {**self._meta, "modalities": names,
                      "fingerprint": fingerprint(view.settings)}
        view._channels = [self._stored.index(m) for m in names]
        return view

    @property
    def num_classes(self) -> int:
        """Number of label classes."""
        return int(self._meta["num_classes"])

    @property
    def fingerprint(self) -> str:
        """Fingerprint of the settings the cache was made with."""
        return str(self._meta["fingerprint"])

    @property
    def source(self) -> str:
        """The dataset the cache was made from."""
        return str(self._meta["source"])

    def _check(self, case: str) -> None:
        if case not in self._labelled:
            raise KeyError(f"case {case!r} is not in cache {self.root}")

    def image_path(self, case: str) -> Path:
        """Path of ``<case>.npy``."""
        self._check(case)
        return self.root / f"{case}.npy"

    def label_path(self, case: str) -> Path:
        """Path of ``<case>_seg.npy``; KeyError for an unlabelled case."""
        self._check(case)
        if not self._labelled[case]:
            raise KeyError(f"case {case!r} is unlabelled")
        return self.root / f"{case}_seg.npy"

    def load_image(self, case: str, mmap: bool = True) -> np.ndarray:
        """(C, X, Y, Z) float32 image, memory-mapped read-only by default.

        A :meth:`select` of channels that are not consecutive in the file is read into
        memory.
        """
        image = np.load(self.image_path(case), mmap_mode="r" if mmap else None)
        return image if self._channels is None else take_channels(image, self._channels)

    def load_label(self, case: str, mmap: bool = True) -> np.ndarray:
        """(X, Y, Z) uint8 label, memory-mapped read-only by default."""
        return np.load(self.label_path(case), mmap_mode="r" if mmap else None)

    def properties(self, case: str) -> dict:
        """The case's properties (geometry and provenance)."""
        self._check(case)
        return json.loads((self.root / f"{case}.json").read_text())


def open_cache(root: Path, modalities: Sequence[str] | None = None) -> Cache:
    """Open a cache, reading only ``modalities`` (in that order) when given.

    Args:
        root: the cache folder.
        modalities: a selection of the cache's modalities (:meth:`Cache.select`), or None.

    Returns:
        The cache.

    Raises:
        ConfigError: no cache there, or an invalid selection.
    """
    cache = Cache(root)
    return cache if modalities is None else cache.select(modalities)


def take_channels(image: np.ndarray, channels: Sequence[int]) -> np.ndarray:
    """``image[channels]``, as a view (a memory map stays one) when they are consecutive.

    Args:
        image: (C, X, Y, Z).
        channels: channel indices in the wanted order.

    Returns:
        The (len(channels), X, Y, Z) image.
    """
    first = channels[0]
    if list(channels) == list(range(first, first + len(channels))):
        return image[first:first + len(channels)]
    return np.stack([image[c] for c in channels])


def load_original_label(path: Path, cfg: PrepareConfig,
                        case: str) -> tuple[np.ndarray, tuple[float, float, float]]:
    """Load a reference label as stored (no reorientation) and map it to classes.

    Args:
        path: label NIfTI file.
        cfg: settings giving ``label_mapping`` and ``num_classes``.
        case: case name (errors).

    Returns:
        The uint8 class map in the file's own orientation and its voxel spacing (mm) along
        the file's array axes.

    Raises:
        InputError: unreadable file, not 3D, non-finite or unknown label values.
    """
    img = load_original(Path(path), case, is_label=True)
    label = map_labels(np.asanyarray(img.dataobj), cfg.label_mapping, cfg.num_classes, case,
                       path)
    return label, spacing_of(img.affine)
