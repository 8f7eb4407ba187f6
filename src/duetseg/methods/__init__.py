"""Training objectives, one module each, looked up by name through the registry."""

from duetseg.methods.base import Method, MethodContext, sigmoid_rampup
from duetseg.methods.registry import available_methods, build_method, fit_branches, get_method_class

__all__ = [
    "Method",
    "MethodContext",
    "sigmoid_rampup",
    "available_methods",
    "build_method",
    "fit_branches",
    "get_method_class",
]
