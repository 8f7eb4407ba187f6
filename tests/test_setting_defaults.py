"""A setting's default is spelled once: functions that take a config setting default to it."""

from __future__ import annotations

import inspect

from duetseg.config import InferenceConfig, TrainConfig
from duetseg.data.sampling import TwoStreamBatches
from duetseg.inference.sliding import INFERENCE_MODES, predict_volume


def _defaults(fn) -> dict[str, object]:
    return {name: p.default for name, p in inspect.signature(fn).parameters.items()
            if p.default is not inspect.Parameter.empty}


def test_predict_volume_defaults_are_the_inference_config():
    defaults, config = _defaults(predict_volume), InferenceConfig()
    shared = set(defaults) & set(InferenceConfig.model_fields)
    assert {"overlap", "blend", "sw_batch_size", "tta_flip", "mode", "amp",
            "whole_max_voxels"} <= shared
    assert {k: defaults[k] for k in shared} == {k: getattr(config, k) for k in shared}
    assert set(INFERENCE_MODES) == {"auto", "sliding", "whole"}


def test_sampler_defaults_are_the_train_config():
    defaults, config = _defaults(TwoStreamBatches.__init__), TrainConfig()
    shared = set(defaults) & set(TrainConfig.model_fields)
    assert {"flip", "rot90", "foreground_prob", "modality_dropout", "intensity_augment",
            "spatial_augment"} <= shared
    assert {k: defaults[k] for k in shared} == {k: getattr(config, k) for k in shared}
