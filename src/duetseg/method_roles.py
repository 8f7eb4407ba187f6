"""The words methods and reports share about a method's part in a comparison.

Kept apart from :mod:`duetseg.methods` (which imports torch) so that reports can name the
ablation switches without importing the networks.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["ABLATION_SWITCHES", "Role"]

Role = Literal["proposed", "baseline", "bound"]
"""What a method is in a comparison: the method the work proposes (every other one is
tested against it), a published baseline, or a bound (labelled data only)."""

ABLATION_SWITCHES = ("mmf", "mae", "mcml")
"""The components an ablation turns off: multi-modal fusion, modality-aware enhancement and
contrastive mutual learning (also the flag attributes of a report's run record)."""
