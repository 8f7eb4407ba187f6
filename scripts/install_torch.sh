#!/bin/sh
# Install PyTorch before the package itself, so pip does not pull a multi-GB CUDA wheel
# onto a machine without a GPU. With a GPU (nvidia-smi works) the normal build is used.
# Usage: install_torch.sh PATH/TO/python
set -e
PY="${1:-python3}"
if "$PY" -c "import torch" 2>/dev/null; then
    exit 0
fi
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then
    "$PY" -m pip install --quiet "torch>=2.2,<3"
else
    # CPU build: torch 2.13.0 (CPU) is pinned first (it is cached locally on the CI
    # machines). Set TORCH_INDEX_URL to a CPU wheel index to choose the CPU build elsewhere.
    if [ -n "${TORCH_INDEX_URL:-}" ]; then
        "$PY" -m pip install --quiet "torch>=2.2,<3" --index-url "$TORCH_INDEX_URL"
    else
        "$PY" -m pip install --quiet "torch==2.13.0" || "$PY" -m pip install --quiet "torch>=2.2,<3"
    fi
fi
