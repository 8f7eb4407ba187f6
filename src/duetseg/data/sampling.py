"""Two-stream batch sampling: every batch holds labelled crops first, then unlabelled ones.

A batch is a pure function of ``(seed, iteration)``:

* the case of each slot comes from seeded walks over permutations of the labelled and of
  the unlabelled cases (:class:`~duetseg.data.case_walk.CaseWalk`; streams 0 and 2), so
  each pass covers every case once;
* crop and augmentation of slot ``k`` come from ``default_rng([seed, 1, iteration, k])``;
* modality dropout (``modality_dropout`` p > 0) of slot ``k`` comes from its own stream
  ``default_rng([seed, 3, iteration, k])``: with probability p one modality, chosen
  uniformly, is replaced by zeros (never all of them: nothing is dropped with a single
  modality). With p = 0 that stream is never drawn and batches are exactly those without
  the option. The batch's ``present`` (B, K) mask says which inputs each crop kept;
* intensity augmentation (``intensity_augment`` p > 0) of slot ``k`` comes from
  ``default_rng([seed, 4, iteration, k])`` (:func:`random_intensity_augment`, before
  modality dropout); with p = 0 that stream is never drawn either;
* contrast inversion (``invert_channels``, channel -> p) of slot ``k`` comes from
  ``default_rng([seed, 7, iteration, k])`` (:func:`random_contrast_inversion`, after the
  flips and before intensity augmentation); without it that stream is never drawn;
* rotation and zoom (``spatial_augment`` p > 0) of slot ``k``: whether and how from
  ``default_rng([seed, 6, iteration, k])`` (:func:`random_rotate_scale`, nnU-Net's ranges:
  up to 30 degrees about each axis, zoom 0.7-1.4); the crop's position still comes from its
  crop stream. With p = 0 that stream is never drawn.

A run resumed at iteration ``t`` therefore sees exactly the batches it would have seen,
whatever the number of DataLoader workers.

Data-parallel runs (``world_size`` W > 1): the global batch of iteration ``t`` is the batch
above with ``W x labeled_bs`` labelled and ``W x (batch_size - labeled_bs)`` unlabelled slots,
and rank ``r`` takes the ``r``-th block of each part (its labelled slots
``r * labeled_bs ...``, its unlabelled slots likewise). Ranks thus draw different slots of
one walk (different cases as long as a pass holds enough cases, and never the same crop
stream), and concatenating the ranks' parts gives exactly what one process with the global
batch would draw. With W = 1 this is the single-process sampler, unchanged.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from duetseg.config import TrainConfig
from duetseg.data.augment import (
    foreground_coords,
    random_contrast_inversion,
    random_crop,
    random_flip_rot,
    random_intensity_augment,
    random_rotate_scale,
    transformed_crop,
)
from duetseg.data.cache import take_channels
from duetseg.data.case_walk import CaseWalk
from duetseg.errors import ConfigError, InputError

__all__ = ["TwoStreamBatches"]

_CROP_STREAM = 1
_DROPOUT_STREAM = 3
_INTENSITY_STREAM = 4
_SPATIAL_STREAM = 6
_INVERSION_STREAM = 7
_DEFAULTS = TrainConfig()  # the augmentation settings default to the config's


class TwoStreamBatches(Dataset):
    """Whole training batches indexed by iteration, read from a prepared cache.

    The augmentation settings default to the fields of the same name of
    :class:`~duetseg.config.TrainConfig`.

    Args:
        cache_root: cache folder holding ``<case>.npy`` (C, X, Y, Z) and ``<case>_seg.npy``.
        labeled: labelled training cases.
        unlabeled: unlabelled training cases (may be empty).
        crop_size: (cx, cy, cz).
        batch_size: crops per batch.
        labeled_bs: labelled crops per batch (the first ones).
        seed: sampling seed.
        flip: random flip along one axis.
        rot90: random 90 degree rotations in (x, y) (square crops only).
        foreground_prob: probability that a labelled crop is centred on foreground.
        rank: this process's rank in a data-parallel run.
        world_size: number of processes (``batch_size`` and ``labeled_bs`` are per process).
        modality_dropout: probability in [0, 1) that a crop has one modality zeroed.
        intensity_augment: probability in [0, 1] that a modality of a crop (labelled or
            unlabelled) gets random brightness, gamma and noise.
        spatial_augment: probability in [0, 1] that a crop (labelled or unlabelled) is
            rotated and zoomed.
        channels: the channels of ``<case>.npy`` to read, in order
            (:attr:`~duetseg.data.cache.Cache.channels`); None for all.
        invert_channels: channel index (after ``channels``) -> probability in [0, 1]
            that a crop's channel is mirrored about its case's mean (see
            :func:`~duetseg.data.modalities.inversion_channels`); None or empty for none.

    Raises:
        ConfigError: inconsistent batch sizes, no labelled cases, a bad crop size, rank or
            modality dropout.
        InputError: a cache file is missing.
    """

    def __init__(self, cache_root: Path, labeled: list[str], unlabeled: list[str],
                 crop_size: Any, batch_size: int, labeled_bs: int, seed: int,
                 flip: bool = _DEFAULTS.flip, rot90: bool = _DEFAULTS.rot90,
                 foreground_prob: float = _DEFAULTS.foreground_prob,
                 rank: int = 0, world_size: int = 1,
                 modality_dropout: float = _DEFAULTS.modality_dropout,
                 intensity_augment: float = _DEFAULTS.intensity_augment,
                 spatial_augment: float = _DEFAULTS.spatial_augment,
                 channels: list[int] | None = None,
                 invert_channels: dict[int, float] | None = None):
        self.cache_root = Path(cache_root)
        self.labeled = list(labeled)
        self.unlabeled = list(unlabeled)
        self.crop_size = tuple(int(c) for c in crop_size)
        self.batch_size = int(batch_size)
        self.labeled_bs = int(labeled_bs)
        self.seed = int(seed)
        self.flip, self.rot90 = bool(flip), bool(rot90)
        self.foreground_prob = float(foreground_prob)
        self.rank, self.world_size = int(rank), int(world_size)
        self.modality_dropout = float(modality_dropout)
        self.intensity_augment = float(intensity_augment)
        self.spatial_augment = float(spatial_augment)
        self.channels = None if channels is None else [int(c) for c in channels]
        self.invert_channels = {int(c): float(p)
                                   for c, p in (invert_channels or {}).items()}
        self._centres: dict[str, np.ndarray] = {}
        if not self.labeled:
            raise ConfigError("two-stream sampling needs at least one labelled case")
        if not 1 <= self.labeled_bs <= self.batch_size:
            raise ConfigError(f"labeled_bs ({labeled_bs}) must be between 1 and batch_size "
                              f"({batch_size})")
        if len(self.crop_size) != 3 or min(self.crop_size) <= 0:
            raise ConfigError(f"crop_size must be three positive integers, got {crop_size}")
        if not 0 <= self.rank < self.world_size:
            raise ConfigError(f"rank {rank} is not in a world of {world_size} processes")
        if not 0.0 <= self.foreground_prob <= 1.0:
            raise ConfigError(f"foreground_prob must be in [0, 1], got {foreground_prob}")
        if not 0.0 <= self.modality_dropout < 1.0:
            raise ConfigError(f"modality_dropout must be in [0, 1), got {modality_dropout}")
        if not 0.0 <= self.intensity_augment <= 1.0:
            raise ConfigError(f"intensity_augment must be in [0, 1], got {intensity_augment}")
        if any(not 0.0 <= p <= 1.0 for p in self.invert_channels.values()):
            raise ConfigError(f"invert_channels probabilities must be in [0, 1], got "
                              f"{invert_channels}")
        if not 0.0 <= self.spatial_augment <= 1.0:
            raise ConfigError(f"spatial_augment must be in [0, 1], got {spatial_augment}")
        for case in self.labeled + self.unlabeled:
            if not (self.cache_root / f"{case}.npy").is_file():
                raise InputError("image missing from the cache", case=case,
                                 file=self.cache_root / f"{case}.npy")
        for case in self.labeled:
            if not (self.cache_root / f"{case}_seg.npy").is_file():
                raise InputError("labelled case has no label in the cache", case=case,
                                 file=self.cache_root / f"{case}_seg.npy")
        self._pid: int | None = None
        self._handles: dict[str, np.ndarray] = {}
        self._fg: dict[str, np.ndarray] = {}
        self._walk = CaseWalk(self.labeled, self.unlabeled, self.batch_size, self.labeled_bs,
                              self.seed, self.rank, self.world_size)

    def __len__(self) -> int:
        return 2**31 - 1

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_pid"], state["_handles"], state["_fg"] = None, {}, {}
        return state

    def cases_for(self, iteration: int) -> list[str]:
        """The case of each slot of this rank's batch of ``iteration`` (labelled slots first)."""
        return [case for case, _ in self._walk.slots(iteration)]

    # -- data access --------------------------------------------------------------------

    def _array(self, name: str) -> np.ndarray:
        if self._pid != os.getpid():  # a forked worker must not reuse the parent's maps
            self._pid, self._handles, self._fg, self._centres = os.getpid(), {}, {}, {}
        arr = self._handles.get(name)
        if arr is None:
            arr = np.load(self.cache_root / f"{name}.npy", mmap_mode="r")
            self._handles[name] = arr
        return arr

    def _fg_coords(self, case: str) -> np.ndarray:
        coords = self._fg.get(case)
        if coords is None:
            coords = foreground_coords(self._array(f"{case}_seg"))
            self._fg[case] = coords
        return coords

    def _case_centres(self, case: str) -> np.ndarray:
        """Per selected channel, the mean of the case's non-zero voxels."""
        centres = self._centres.get(case)
        if centres is None:
            image = self._array(case)
            centres = np.array([float(np.mean(ch[ch != 0])) if np.any(ch != 0) else 0.0
                                for ch in (np.asarray(image[c]) for c in range(len(image)))])
            if self.channels is not None:
                centres = centres[self.channels]
            self._centres[case] = centres
        return centres

    def __getitem__(self, iteration: int) -> dict[str, Any]:
        """The batch of ``iteration``.

        Returns:
            ``{"image": float32 (B, C, X, Y, Z), "label": int64 (labeled_bs, X, Y, Z),
            "cases": [B case IDs], "present": bool (B, C)}``; ``present[b, m]`` is False
            where modality dropout zeroed channel ``m`` of crop ``b`` (all True when off).
            With modality dropout on, ``"image_full"`` holds the crops before it.
        """
        iteration = int(iteration)
        if iteration < 0:
            raise IndexError(f"iteration {iteration} is negative")
        slots = self._walk.slots(iteration)
        cases = [case for case, _ in slots]
        images, labels = [], []
        for slot, (case, global_slot) in enumerate(slots):
            rng = np.random.default_rng([self.seed, _CROP_STREAM, iteration, global_slot])
            image = self._array(case)
            if image.ndim != 4:
                raise InputError(f"expected a (C, X, Y, Z) array, got shape {image.shape}",
                                 case=case, file=self.cache_root / f"{case}.npy")
            labelled = slot < self.labeled_bs
            label = self._array(f"{case}_seg") if labelled else None
            fg = (self._fg_coords(case)
                  if labelled and self.foreground_prob > 0 else None)
            img, lab = self._crop(image, label, rng, iteration, global_slot,
                                  self.foreground_prob if labelled else 0.0, fg)
            if self.channels is not None:  # crop every channel, keep the selection
                img = np.ascontiguousarray(take_channels(img, self.channels))
            img, lab = random_flip_rot(img, lab, rng, self.flip, self.rot90)
            if self.invert_channels:
                img = random_contrast_inversion(img, np.random.default_rng(
                    [self.seed, _INVERSION_STREAM, iteration, global_slot]),
                    self.invert_channels, self._case_centres(case))
            if self.intensity_augment > 0:
                img = random_intensity_augment(img, np.random.default_rng(
                    [self.seed, _INTENSITY_STREAM, iteration, global_slot]),
                    self.intensity_augment)
            images.append(img)
            if lab is not None:
                labels.append(lab)
        channels = {im.shape[0] for im in images}
        if len(channels) > 1:
            raise InputError(f"cases in one batch have different channel counts {channels}: "
                             f"{cases}")
        image = np.stack(images)
        full = image.copy() if self.modality_dropout > 0 else None
        present = self._drop_modalities(image, iteration, [g for _, g in slots])
        batch = {"image": torch.from_numpy(image),
                 "label": torch.from_numpy(np.stack(labels).astype(np.int64)),
                 "cases": cases, "present": torch.from_numpy(present)}
        if full is not None:
            batch["image_full"] = torch.from_numpy(full)
        return batch

    def _crop(self, image: np.ndarray, label: np.ndarray | None, rng: np.random.Generator,
              iteration: int, global_slot: int, foreground_prob: float,
              fg: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
        """The slot's crop, rotated and zoomed with probability ``spatial_augment``."""
        if self.spatial_augment > 0:
            spatial = np.random.default_rng([self.seed, _SPATIAL_STREAM, iteration,
                                             global_slot])
            if spatial.random() < self.spatial_augment:
                return transformed_crop(image, label, self.crop_size,
                                        random_rotate_scale(spatial), rng, foreground_prob, fg)
        return random_crop(image, label, self.crop_size, rng, foreground_prob, fg)

    def _drop_modalities(self, image: np.ndarray, iteration: int,
                         global_slots: list[int]) -> np.ndarray:
        """Zero one modality of some crops of ``image`` in place; return the (B, C) mask."""
        present = np.ones(image.shape[:2], dtype=bool)
        channels = image.shape[1]
        if self.modality_dropout <= 0.0 or channels < 2:
            return present
        for b, global_slot in enumerate(global_slots):
            rng = np.random.default_rng([self.seed, _DROPOUT_STREAM, iteration, global_slot])
            if rng.random() < self.modality_dropout:
                m = int(rng.integers(channels))
                image[b, m] = 0.0
                present[b, m] = False
        return present

