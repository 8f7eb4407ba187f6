"""The network as an ONNX graph, and ONNX Runtime as the per-window predictor.

The graph is what sliding-window inference calls per window: the method's
``output_probabilities`` (for DuetNet the softmax of each branch and their mean, for a single
network its softmax), input ``image`` of shape (N, C, X, Y, Z), one output per named output,
batch and spatial axes dynamic (so whole-volume inference works too). :class:`OrtPredictor`
runs it with ONNX Runtime on the CPU and returns torch tensors, so MONAI's
``sliding_window_inference`` and everything around it stay as they are.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from duetseg.errors import ModelFileError

__all__ = ["INPUT_NAME", "OPSET", "OrtPredictor", "export_onnx", "require_onnxruntime"]

INPUT_NAME = "image"
OPSET = 17
_INSTALL = "pip install 'duetseg[onnx]'"


class _Outputs(nn.Module):
    """``method.output_probabilities`` as a tuple, in ``names`` order (what ONNX exports)."""

    def __init__(self, method: nn.Module, names: Sequence[str]):
        super().__init__()
        self.method = method
        self.names = list(names)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.method.output_probabilities(image)
        return tuple(out[name] for name in self.names)


def export_onnx(method: nn.Module, channels: int,
                roi_size: Sequence[int]) -> tuple[bytes, list[str]]:
    """Export ``method.output_probabilities`` to ONNX.

    Args:
        method: a method in eval mode (on the CPU).
        channels: input channels (modalities).
        roi_size: the sliding-window size (the example input's spatial size).

    Returns:
        The serialised graph and its output names, in order.
    """
    example = torch.zeros(1, channels, *roi_size)
    with torch.no_grad():
        names = list(method.output_probabilities(example))
    axes = {0: "batch", 2: "x", 3: "y", 4: "z"}
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about shape checks turned constant
        torch.onnx.export(_Outputs(method, names).eval(), (example,), buf,
                          input_names=[INPUT_NAME], output_names=names,
                          dynamic_axes={n: axes for n in (INPUT_NAME, *names)},
                          opset_version=OPSET, dynamo=False)
    return buf.getvalue(), names


def require_onnxruntime(path: str | Path):
    """Import onnxruntime, or say how to install it.

    Args:
        path: the model file asked for (for the message).

    Returns:
        The ``onnxruntime`` module.

    Raises:
        ModelFileError: onnxruntime is not installed.
    """
    try:
        import onnxruntime
    except ImportError as exc:
        raise ModelFileError(f"--backend onnxruntime needs onnxruntime, which is not "
                             f"installed ({_INSTALL})", file=path) from exc
    return onnxruntime


class OrtPredictor:
    """A per-window predictor running the ONNX graph with ONNX Runtime on the CPU.

    Args:
        graph: the serialised ONNX model.
        names: its output names (the method's output names).
        path: the model file (for messages).
        threads: intra-op threads; default torch's thread count (equal footing).
    """

    def __init__(self, graph: bytes, names: Sequence[str], path: str | Path,
                 threads: int | None = None):
        ort = require_onnxruntime(path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        try:
            self.runtime = ort.InferenceSession(graph, options,
                                                providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own error types
            raise ModelFileError(f"member model.onnx cannot be loaded by onnxruntime "
                                 f"({str(exc).splitlines()[0]})", file=path) from exc
        found = [o.name for o in self.runtime.get_outputs()]
        if found != list(names):
            raise ModelFileError(f"member model.onnx has outputs {found}, expected "
                                 f"{list(names)}", file=path)
        self.names = list(names)

    def __call__(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """Probabilities of every output for a (N, C, X, Y, Z) window batch.

        Args:
            image: the windows (any device; run on the CPU).

        Returns:
            Output name -> (N, classes, X, Y, Z) float32 tensors on ``image``'s device.
        """
        x = image.detach().to("cpu", torch.float32).contiguous().numpy()
        outs = self.runtime.run(None, {INPUT_NAME: x})
        return {n: torch.from_numpy(o).to(image.device) for n, o in zip(self.names, outs)}
