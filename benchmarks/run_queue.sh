#!/usr/bin/env bash
# Train the cross-validated runs listed in a queue file, one line at a time, one thread.
# A line is either "LABELLED SEED FOLD VARIANT" (a run of real_brats.py --cv 3) or
# "suggest VARIANT FOLD ARM" (one arm of suggest_vs_random.py); blank lines and # comments
# are skipped. Several copies of this script may share one queue: a line is claimed by
# creating QUEUE.claimed/<line>, so two copies never train the same run. Finished runs are
# skipped and interrupted ones resume (--need-weights retrains a run whose weights are not
# here). Lines appended while the copies run are picked up.
# Usage: bash benchmarks/run_queue.sh QUEUE [NORM]   (NORM default zscore_nonzero)
set -u
queue=$(realpath "$1")  # before the cd below: a relative path stays the caller's
norm=${2:-zscore_nonzero}
lockdir="${queue}.claimed"
mkdir -p "$lockdir"
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
while read -r a b c d; do
  [[ -z "${a:-}" || "$a" == \#* ]] && continue
  mkdir "$lockdir/${a}_${b}_${c}_${d}" 2>/dev/null || continue
  if [[ "$a" == suggest ]]; then
    .venv/bin/python benchmarks/suggest_vs_random.py --variant "$b" --cv 3 --labeled 2 \
      --iterations 1000 --folds "$c" --arms "$d" --norm "$norm" < /dev/null
  else
    .venv/bin/python benchmarks/real_brats.py --cv 3 --labeled "$a" --iterations 1000 \
      --methods "$d" --folds "$c" --seeds "$b" --norm "$norm" --need-weights --threads 1 \
      < /dev/null
  fi
done < "$queue"
