#!/usr/bin/env bash
# The GPU measurements for a lent GPU, in one prioritised run with a deadline:
#   1. the training step of the brats19 setting with its FLOP count (TFLOP/s vs the card),
#   2. the first grid of $GRIDS (benchmarks/grids/<name>.yaml; default cv_L4, the
#      cross-validated real-BraTS protocol with 4 labelled cases) with
#      `duetseg experiment --parallel $PARALLEL`, trained and evaluated there,
#   3. runs per hour of `duetseg experiment --parallel N` for N = 1, 2, 4, 8,
#   4. the other grids (cv_L2: 2 labelled, three seeds; cv_L2_table2: the ablation),
#      with what is left (a later call runs the rest: GRIDS="cv_L2 ..." THROUGHPUT=0),
#   5. torch.compile on top of channels-last, if time remains.
# Each speed step records its result under benchmarks/results (copied to $OUT/results); the
# evaluated runs come back without weights in $OUT/gpu_runs.tar.gz (archive them here with
# `python benchmarks/gpu_grid.py report --archive ... --grid cv_L4`, then rebuild the page
# with `python benchmarks/results_page.py`).
#
# Before the device call, here: `python benchmarks/gpu_grid.py pack` (the caches and labels
# into local_data/gpu_pack, the wheels the device lacks into .whl/). Device call:
#   run(command="BUDGET_S=540 bash benchmarks/gpu_protocol.sh", carry=[".whl",
#       "local_data/gpu_pack"], timeout_s=600)
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/gpu_protocol}
BUDGET=${BUDGET_S:-540}
PARALLEL=${PARALLEL:-12}
GRIDS=${GRIDS:-cv_L4 cv_L2 cv_L2_table2}  # in order; each in benchmarks/grids
THROUGHPUT=${THROUGHPUT:-1}  # 0: skip step 3
START=$(date +%s)
mkdir -p "$OUT"
LOG=$OUT/log.txt
RESERVE=25  # seconds kept to collect the runs
# shellcheck source=benchmarks/gpu_lib.sh
source benchmarks/gpu_lib.sh
gpu_env || exit 1

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee -a "$LOG"
python3 -c "import torch, monai, duetseg; print(torch.__version__, monai.__version__)" \
  2>&1 | tee -a "$LOG"
python3 benchmarks/gpu_grid.py unpack >>"$LOG" 2>&1 || exit 1

step flops 60 python3 benchmarks/train_speed.py --device cuda --crops 96 --methods ours \
  --steps 10 --amp bf16 --channels-last
grid() {  # grid NAME MAX_SECONDS: the parent prints when each run starts and ends
  step "grid_$1" "$2" python3 -m duetseg experiment "benchmarks/grids/$1.yaml" \
    --parallel "$PARALLEL" --quiet
}
# shellcheck disable=SC2086
set -- $GRIDS
grid "$1" 330
shift
if [ "$THROUGHPUT" = 1 ]; then
  step throughput 150 python3 benchmarks/grid_throughput.py --parallel 1 2 4 8 \
    --iterations 200
fi
for name in "$@"; do grid "$name" 600; done
step compile_channels_last 120 python3 benchmarks/train_speed.py --device cuda --crops 96 \
  --methods ours --steps 10 --amp bf16 --channels-last --compile

# shellcheck disable=SC2086
python3 benchmarks/gpu_grid.py collect "$OUT" --grids $GRIDS 2>&1 | tee -a "$LOG"
echo "=== done after $(($(date +%s) - START))s" | tee -a "$LOG"
