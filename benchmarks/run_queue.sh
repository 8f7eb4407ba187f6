#!/usr/bin/env bash
# Train the cross-validated runs listed in a queue file, one line at a time, one thread.
# Each line: "LABELLED SEED FOLD VARIANT" (blank lines and # comments skipped). Several
# copies of this script may share one queue: a line is claimed by creating LOCKDIR/<line>,
# so two copies never train the same run. Finished runs are skipped and interrupted ones
# resume (real_brats.py --need-weights retrains a run whose weights are not here).
# Usage: bash benchmarks/run_queue.sh QUEUE [NORM]   (NORM default zscore_nonzero)
set -u
queue=$1
norm=${2:-zscore_nonzero}
lockdir="${queue}.claimed"
mkdir -p "$lockdir"
cd "$(dirname "$0")/.."
while read -r labelled seed fold variant; do
  [[ -z "${labelled:-}" || "$labelled" == \#* ]] && continue
  mkdir "$lockdir/L${labelled}_s${seed}_f${fold}_${variant}" 2>/dev/null || continue
  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/real_brats.py --cv 3 --labeled "$labelled" \
    --iterations 1000 --methods "$variant" --folds "$fold" --seeds "$seed" \
    --norm "$norm" --need-weights --threads 1 < /dev/null
done < "$queue"
