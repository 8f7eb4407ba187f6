"""Inference: sliding-window prediction (export to original geometry lives in data.geometry)."""

from duetseg.inference.sliding import Predictor, predict_volume

__all__ = ["Predictor", "predict_volume"]
