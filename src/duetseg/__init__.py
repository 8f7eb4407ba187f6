"""duetseg: semi-supervised multi-modal 3D medical image segmentation."""

__version__ = "0.1.0"
__all__ = ["__version__"]
