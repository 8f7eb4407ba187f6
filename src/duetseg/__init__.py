"""duetseg: semi-supervised multi-modal 3D medical image segmentation.

``from duetseg import Segmenter`` is the Python API (:mod:`duetseg.segmenter`); it is
imported on first access, so ``import duetseg`` stays light (no torch).
"""

from __future__ import annotations

from duetseg._lazy import lazy_exports

__version__ = "0.1.0"
_EXPORTS = {"Segmentation": "segmenter", "Segmenter": "segmenter"}
__all__ = ["Segmentation", "Segmenter", "__version__"]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
