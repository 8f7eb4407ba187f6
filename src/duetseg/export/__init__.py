"""One-file models: ``duetseg export`` and predicting from its file.

* :mod:`duetseg.export.package`: the zip format (manifest, checksums, no pickle; no torch);
* :mod:`duetseg.export.model`: :func:`export_model`, :func:`load_model` (torch);
* :mod:`duetseg.export.onnx`: the network as ONNX and ONNX Runtime as its predictor.

The names below are imported from their module on first access (``import duetseg.export``
does not import torch).
"""

from __future__ import annotations

from duetseg._lazy import lazy_exports

_EXPORTS = {
    "FORMAT_VERSION": "package",
    "ModelPackage": "package",
    "read_package": "package",
    "BACKENDS": "model",
    "export_model": "model",
    "load_model": "model",
    "load_model_file": "model",
}

__all__ = list(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
