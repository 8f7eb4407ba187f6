"""Figures and reports."""

from duetseg.reporting.overlay import save_overlay

__all__ = ["save_overlay"]
