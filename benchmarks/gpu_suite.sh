#!/usr/bin/env bash
# Every GPU benchmark in one short, prioritised run (for a lent GPU machine with a time
# budget). Each step records its result under benchmarks/results/speed_gpu (copied to
# $OUT/results); a global deadline shortens or skips
# the later steps so the most important figures always come back.
#
# Usage: OUT=/some/dir BUDGET_S=520 bash benchmarks/gpu_suite.sh
#   needs: local_data/gpu_cases (a few BraTS-layout cases: t1ce, t2, seg) for the wall-clock
#   step; where duetseg's dependencies are missing, wheels in .whl/ (`gpu_grid.py pack`).
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/gpu_suite}
mkdir -p "$OUT"
LOG=$OUT/log.txt
START=$(date +%s)
BUDGET=${BUDGET_S:-520}
# shellcheck source=benchmarks/gpu_lib.sh
source benchmarks/gpu_lib.sh
gpu_env || exit 1

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee -a "$LOG"
python3 -c "import torch, monai, duetseg; print(torch.__version__, monai.__version__)" \
  2>&1 | tee -a "$LOG"
TS=benchmarks/train_speed.py
step train_bf16 110 python3 $TS --device cuda --crops 64 96 --methods ours mean_teacher \
  --steps 10 --amp bf16
step train_fp32 70 python3 $TS --device cuda --crops 96 --methods ours mean_teacher --steps 10
step wallclock 200 python3 benchmarks/train_wallclock.py --data local_data/gpu_cases \
  --short 40 --long 240
step infer_bf16 60 python3 benchmarks/inference_speed.py --device cuda --amp bf16 --sw-batch 4
step train_channels_last 40 python3 $TS --device cuda --crops 96 --methods ours --steps 10 \
  --amp bf16 --channels-last
step infer_fp32 60 python3 benchmarks/inference_speed.py --device cuda --sw-batch 4 --skip-tta
step train_compile 150 python3 $TS --device cuda --crops 96 --methods ours --steps 10 \
  --amp bf16 --compile
echo "=== done after $(($(date +%s) - START))s" | tee -a "$LOG"
