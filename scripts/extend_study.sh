#!/usr/bin/env bash
# Mini-study of evaluation-time length extension (issue 10): rope, t5, alibi and nope runs of
# copy and sort at the default recipe (conf/trainer/cpu.yaml: 2000 steps), 2 seeds, each
# re-evaluated at up to 4x its training length with every applicable `extend=` method at
# factors 2 and 4, then `lengen report ... evals=true`.
#
#   bash scripts/extend_study.sh [RUNS_ROOT] [OUT] [STAGE]      # STAGE: all | train | eval | report
#   TASKS=copy PES=rope SEEDS=1 bash scripts/extend_study.sh /tmp/runs /tmp/out   # a subset
#
# Defaults: RUNS_ROOT=results/extend-cpu/rundirs (committed without checkpoints), OUT=results/extend-cpu.
# Training runs one job at a time with one torch thread. Rerunning skips finished runs (results.parquet)
# and finished evaluation sweeps (listed in <task>/EVALS_DONE); on a fresh clone (no checkpoints) the
# committed rows rebuild the report: bash scripts/extend_study.sh results/extend-cpu/rundirs results/extend-cpu report
set -euo pipefail
RUNS=${1:-results/extend-cpu/rundirs}
OUT=${2:-results/extend-cpu}
STAGE=${3:-all}
TASKS=${TASKS:-copy,sort}
PES=${PES:-rope,t5,alibi,nope}
SEEDS=${SEEDS:-1,2}
STUDY=extend-cpu
COMMON=(trainer.threads=1)
secs() { date +%s; }

if [[ $STAGE == all || $STAGE == train ]]; then
  t0=$(secs)
  lengen train -m "+pe=$PES" "task=$TASKS" "seed=$SEEDS" study=$STUDY runs_root="$RUNS" logger=csv \
    trainer.enable_progress_bar=false "${COMMON[@]}"
  echo "training wall time: $(( ($(secs) - t0) / 60 )) min $(( ($(secs) - t0) % 60 )) s"
fi

# Every run is re-evaluated up to 4x its longest training length (eval.max_len), 40 examples per length,
# with every method that applies to its PE: the rotary methods with a factor at factors 2 and 4
# (self_extend: group 2 and 4), the factor-free ones once. One `lengen eval -m` per PE family and task
# (one process, so Lightning is imported once per sweep). Each finished sweep is listed in the task's
# EVALS_DONE and skipped on a rerun; SWEEPS picks some of them (default: all four).
N_PER_LENGTH=${N_PER_LENGTH:-40}
SWEEPS=${SWEEPS:-rope-factor rope-once biased-factor others-once}
if [[ $STAGE == all || $STAGE == eval ]]; then
  t0=$(secs)
  for task in ${TASKS//,/ }; do
    base="$RUNS/$STUDY/$task"
    dirs() { local out=(); for pe in "$@"; do for d in "$base/$pe"/default/seed*; do
      [[ -f $d/results.parquet ]] && out+=("$d"); done; done; (IFS=,; echo "${out[*]}"); }
    train_max=$(python -c "import yaml,sys; print(yaml.safe_load(open(sys.argv[1]))['task']['train_max'])" \
      "$(ls -d "$base"/*/default/seed*/config.yaml | head -1)")
    ev=(eval.max_len=$(( 4 * train_max )) eval.n_per_length="$N_PER_LENGTH" "${COMMON[@]}")
    rope=$(dirs rope); biased=$(dirs t5 alibi); others=$(dirs t5 alibi nope)
    sweep() {  # sweep ID RUN_DIRS OVERRIDES...: one `lengen eval -m`, once
      local id=$1 list=$2; shift 2
      [[ " $SWEEPS " == *" $id "* && -n $list ]] || return 0
      grep -qx "$id" "$base/EVALS_DONE" 2>/dev/null && { echo "$task $id: done before"; return 0; }
      lengen eval -m run_dir="$list" "$@" "${ev[@]}" >> "$base/evals.log" 2>&1
      echo "$id" >> "$base/EVALS_DONE"
      echo "$task $id: evaluated ($(( ($(secs) - t0) / 60 )) min so far)"
    }
    sweep rope-factor "$rope" extend=pi,ntk,dynamic_ntk,yarn,giraffe_power,giraffe_truncate,self_extend \
      extend.factor=2,4
    sweep rope-once "$rope" extend=none,abf,lm_infinite,sliding_window,temperature
    sweep biased-factor "$biased" extend=self_extend extend.factor=2,4
    sweep others-once "$others" extend=none,lm_infinite,sliding_window,temperature
  done
  echo "evaluation wall time: $(( ($(secs) - t0) / 60 )) min $(( ($(secs) - t0) % 60 )) s"
fi

# The report (exact match: tables, ranking, plots, extend.md), then the same view in token accuracy
# (tables, and the plots by method only) in $OUT/token_accuracy.
if [[ $STAGE == all || $STAGE == report ]]; then
  lengen report "$RUNS/$STUDY" out="$OUT" evals=true
  lengen report "$RUNS/$STUDY" out="$OUT/token_accuracy" evals=true metric=token_accuracy plots=false \
    title=extend-cpu
  python - "$RUNS/$STUDY" "$OUT/token_accuracy" <<'PY'
import sys
import warnings
from pathlib import Path

from lengen.report import load_runs, save
from lengen.report import extend as methods

warnings.simplefilter("ignore")
df, _ = load_runs([sys.argv[1]], evals=True)
for name, make in methods.plots(df, "token_accuracy", "extend-cpu"):
    print(save(make(), Path(sys.argv[2]) / name))
PY
fi
