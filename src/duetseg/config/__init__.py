"""Typed configuration (pydantic) for preparation and training.

Every model forbids unknown keys, so a typo in a YAML file is an error, not a silent default.
Presets live in ``duetseg/presets/*.yaml``; ``load_config`` merges a preset or file with
dotted overrides such as ``train.max_iterations=200``.
"""

from __future__ import annotations

from duetseg.config.base import StrictModel
from duetseg.config.loading import PRESET_DIR, apply_overrides, list_presets, load_config
from duetseg.config.prepare import NormalizationConfig, PrepareConfig, RegistrationConfig
from duetseg.config.run import (
    Config,
    InferenceConfig,
    MethodConfig,
    ModelConfig,
    SplitConfig,
    TrainConfig,
)

__all__ = [
    "StrictModel",
    "NormalizationConfig",
    "RegistrationConfig",
    "PrepareConfig",
    "SplitConfig",
    "ModelConfig",
    "MethodConfig",
    "TrainConfig",
    "InferenceConfig",
    "Config",
    "PRESET_DIR",
    "list_presets",
    "load_config",
    "apply_overrides",
]
