# Shared by the GPU scripts (sourced): the environment of a bare GPU machine and a step
# runner with a global deadline. Needs START (epoch seconds), BUDGET (seconds), OUT, LOG;
# RESERVE (seconds kept free at the end, default 0).

gpu_env() {  # the packages the device lacks travel as wheels in .whl/
  export PYTHONUNBUFFERED=1
  if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site .whl/*.whl || return 1
    export PYTHONPATH=$PWD/src:/tmp/site
  else
    export PYTHONPATH=$PWD/src
  fi
}

step() {  # step NAME MAX_SECONDS command...  (shortened to what the deadline leaves)
  local name=$1 max=$2 left
  shift 2
  left=$((BUDGET - ($(date +%s) - START) - ${RESERVE:-0}))
  if [ "$left" -lt 20 ]; then echo "=== $name skipped (budget)" | tee -a "$LOG"; return; fi
  [ "$max" -gt "$left" ] && max=$left
  echo "=== $name (max ${max}s) $(date +%T)" | tee -a "$LOG"
  timeout "$max" "$@" >>"$LOG" 2>&1
  echo "=== $name rc=$? after $(($(date +%s) - START))s" | tee -a "$LOG"
  mkdir -p "$OUT/results" && cp -r benchmarks/results/speed_gpu "$OUT/results/" 2>/dev/null
}
