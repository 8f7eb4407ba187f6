"""What prediction needs to know of a run's cache, kept with the run (``preprocessing.json``).

Training writes the cache's description (its ``dataset.json`` without the case list) into
the run directory, so predicting with the run, or exporting it, no longer needs the cache.
Runs trained before that file existed read it from their cache instead
(:func:`duetseg.run.trained.load_trained_run`). Standard library and pydantic only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from duetseg.atomic import save_json
from duetseg.config import PrepareConfig
from duetseg.errors import ConfigError

__all__ = ["Preprocessing"]


@dataclass(frozen=True)
class Preprocessing:
    """The preparation settings and identity of the data a model was trained on.

    Has the attributes of :class:`~duetseg.data.cache.Cache` that building and checking a
    model reads (``settings``, ``modalities``, ``num_classes``), so it stands for the cache
    in :func:`~duetseg.run.trained.method_context` and
    :func:`~duetseg.run.checkpoint.checkpoint_meta`.

    Attributes:
        settings: the preparation settings (modalities, target spacing, crop margin,
            per-modality normalisation, label mapping, number of classes, registration).
        modalities: modality names in input-channel order.
        num_classes: number of classes including background.
        fingerprint: the cache's fingerprint of ``settings``.
        source: the dataset the cache was made from.
        channels: the nnU-Net channel index of each modality when the cache was prepared
            from nnU-Net channel files (``<case>_0000.nii.gz``), else None; a flat folder
            of channel files without a ``dataset.json`` is read with them.
    """

    settings: PrepareConfig
    modalities: tuple[str, ...]
    num_classes: int
    fingerprint: str
    source: str
    channels: dict[str, int] | None = None

    @classmethod
    def from_cache(cls, cache: Any) -> Preprocessing:
        """The description of an opened :class:`~duetseg.data.cache.Cache`."""
        from duetseg.data.nnunet_layout import channel_of_file

        cases = cache.cases
        sources = cache.properties(cases[0]).get("source_files", {}) if cases else {}
        found = {m: channel_of_file(Path(sources.get(m, "")).name) for m in cache.modalities}
        channels = ({m: int(c) for m, c in found.items() if c is not None}
                    if found and all(c is not None for c in found.values()) else None)
        return cls(settings=cache.settings, modalities=tuple(cache.modalities),
                   num_classes=int(cache.num_classes), fingerprint=str(cache.fingerprint),
                   source=str(cache.source), channels=channels)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (read back with :meth:`from_dict`)."""
        return {"settings": self.settings.model_dump(mode="json"),
                "modalities": list(self.modalities), "num_classes": self.num_classes,
                "fingerprint": self.fingerprint, "source": self.source,
                "channels": self.channels}

    @classmethod
    def from_dict(cls, data: Any, origin: str | Path) -> Preprocessing:
        """Read :meth:`to_dict`'s form.

        Args:
            data: the parsed JSON.
            origin: where it was read from (for the message).

        Raises:
            ConfigError: missing keys or invalid settings.
        """
        try:
            return cls(settings=PrepareConfig.model_validate(data["settings"]),
                       modalities=tuple(str(m) for m in data["modalities"]),
                       num_classes=int(data["num_classes"]),
                       fingerprint=str(data["fingerprint"]), source=str(data["source"]),
                       channels=({str(k): int(v) for k, v in data["channels"].items()}
                                 if data.get("channels") else None))
        except (KeyError, TypeError, ValueError, ValidationError) as exc:
            raise ConfigError(f"{origin}: invalid preprocessing description ({exc})") from exc

    def save(self, path: Path) -> None:
        """Write it as JSON, atomically."""
        save_json(self.to_dict(), path)

    @classmethod
    def load(cls, path: Path) -> Preprocessing:
        """Read a file written by :meth:`save`.

        Raises:
            ConfigError: unreadable or invalid file.
        """
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path}: unreadable ({exc})") from exc
        return cls.from_dict(data, path)
