"""Settings of ``duetseg prepare``: modalities, layout, spacing, normalisation, registration."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from duetseg.config.base import StrictModel
from duetseg.data.discovery import LAYOUTS

__all__ = ["NormalizationConfig", "RegistrationConfig", "PrepareConfig"]

# "auto" or an input layout of duetseg.data.discovery.LAYOUT_REGISTRY
LayoutName = Literal[("auto", *LAYOUTS)]


class NormalizationConfig(StrictModel):
    """Intensity normalisation of one modality.

    ``zscore_nonzero`` (default) standardises with the mean/std of the non-zero voxels;
    ``minmax`` (the paper) maps the non-zero range to [0, 1]; ``percentile_minmax`` clips to
    the given percentiles of non-zero voxels first; ``ct_window`` maps the HU window level ±
    width/2 to [0, 1].
    """

    # zscore_nonzero by the cross-validated numbers on 15 real BraTS cases:
    # with min-max scaling a case's brain intensities depend on its brightest voxel, and
    # networks trained on a few labelled cases learn absolute levels (z-scoring: +13 and
    # +17 Dice points for `ours` and the labelled-only control over 15 real cases).
    scheme: Literal["minmax", "percentile_minmax", "zscore_nonzero", "ct_window"] = (
        "zscore_nonzero")
    lower_percentile: float = 0.5
    upper_percentile: float = 99.5
    window_level: float = 40.0
    window_width: float = 400.0


class RegistrationConfig(StrictModel):
    """Rigid registration of modalities to a reference one (CT + MR), see
    :mod:`duetseg.data.registration`.

    ``reference`` None means the first modality whose normalisation is not ``ct_window`` (the
    MR), else the first modality. ``initialization``: ``geometry`` aligns the image centres,
    ``moments`` the intensity centres of mass, ``header`` trusts the files' world
    coordinates. The plausibility limits bound the rotation and the shift of the reference
    image's centre that the optimiser adds to the initialisation; the final metric (Mattes MI,
    lower is better) must beat the initial one and stay below ``max_metric`` (None: no bound;
    -0.05 rejects images that share no structure, whose MI is about 0). ``skip_same_grid``: a
    modality already on the reference grid is taken as aligned and not registered.
    """

    enabled: bool = False
    reference: str | None = None
    initialization: Literal["geometry", "moments", "header"] = "geometry"
    skip_same_grid: bool = True
    histogram_bins: int = Field(default=32, ge=4)
    sampling_percentage: float = Field(default=0.25, gt=0.0, le=1.0)
    seed: int = Field(default=1, ge=1)  # SimpleITK reads seed 0 as "wall clock"
    learning_rate: float = Field(default=2.0, gt=0.0)
    iterations: int = Field(default=200, ge=1)
    shrink_factors: list[int] = Field(default_factory=lambda: [4, 2, 1], min_length=1)
    smoothing_sigmas: list[float] = Field(default_factory=lambda: [2.0, 1.0, 0.0], min_length=1)
    max_rotation_deg: float = Field(default=30.0, gt=0.0)
    max_translation_mm: float = Field(default=50.0, gt=0.0)
    max_metric: float | None = -0.05
    num_threads: int = Field(default=1, ge=1)  # 1: bit-identical results on every machine

    @model_validator(mode="after")
    def _levels_match(self) -> RegistrationConfig:
        if len(self.shrink_factors) != len(self.smoothing_sigmas):
            raise ValueError(f"shrink_factors {self.shrink_factors} and smoothing_sigmas "
                             f"{self.smoothing_sigmas} need one entry per level each")
        return self


class PrepareConfig(StrictModel):
    """Settings of ``duetseg prepare``; their fingerprint decides whether a cache is reused."""

    modalities: list[str] = Field(default_factory=lambda: ["t1ce", "t2"], min_length=1)
    layout: LayoutName = "auto"
    target_spacing: tuple[float, float, float] | None = None
    crop_margin: int = Field(default=0, ge=0)
    normalization: dict[str, NormalizationConfig] = Field(default_factory=dict)
    default_normalization: NormalizationConfig = Field(default_factory=NormalizationConfig)
    # "whole_tumour": any label > 0 becomes 1 (BraTS); "tumour_core" (labels 1 and 3/4) and
    # "enhancing_tumour" (3/4) the other BraTS regions. "identity": values must already be
    # 0..num_classes-1. A dict maps original values to classes; other values are errors.
    label_mapping: (Literal["whole_tumour", "tumour_core", "enhancing_tumour", "identity"]
                    | dict[int, int]) = "identity"
    num_classes: int = Field(default=2, ge=2)
    registration: RegistrationConfig = Field(default_factory=RegistrationConfig)

    @model_validator(mode="after")
    def _reference_is_a_modality(self) -> PrepareConfig:
        ref = self.registration.reference
        if ref is not None and ref not in self.modalities:
            raise ValueError(f"registration reference {ref!r} is not one of the modalities "
                             f"{self.modalities}")
        return self

    def normalization_for(self, modality: str) -> NormalizationConfig:
        """Return the normalisation of ``modality`` (its own entry or the default)."""
        return self.normalization.get(modality, self.default_normalization)
