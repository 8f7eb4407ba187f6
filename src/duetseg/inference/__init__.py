"""Inference: sliding-window prediction and post-processing (export to original geometry
lives in data.geometry)."""

from duetseg.inference.postprocess import keep_largest_component
from duetseg.inference.sliding import Predictor, predict_volume, predict_with_config

__all__ = ["Predictor", "keep_largest_component", "predict_volume", "predict_with_config"]
