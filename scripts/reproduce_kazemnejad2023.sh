#!/usr/bin/env bash
# Reproduce Kazemnejad et al. (2023) "The Impact of Positional Encoding on Length Generalization
# in Transformers" at CPU scale: the paper's nine tasks x 5 PEs (nope, t5, alibi, rope rotating
# 25 % as in the paper, ape) x 3 seeds, one recipe per task family used for every PE
# (conf/recipe/, chosen on in-range validation: results/kazemnejad2023-cpu/README.md), then
# `lengen report`.
#
#   bash scripts/reproduce_kazemnejad2023.sh [RUNS_ROOT] [OUT]
#   TASKS="sort copy" SEEDS=1 bash scripts/reproduce_kazemnejad2023.sh     # a part of it
#   RECIPE=steps6k TASKS=addition SEEDS=1 bash ...                         # a recipe candidate
#   STAGE=report bash scripts/reproduce_kazemnejad2023.sh                  # only rebuild the report
#   HYDRA_ARGS="hydra.searchpath=[file:///my/conf]" RECIPE=mine ...        # a recipe of your own
#   PART=scratchpad bash scripts/reproduce_kazemnejad2023.sh               # the scratchpad table
#
# Run dirs go to RUNS_ROOT (default results/kazemnejad2023-cpu/rundirs, committed without
# checkpoints), so a rerun -- on this machine or a fresh clone -- skips every finished run,
# resumes interrupted ones (from their last.ckpt, where present) and trains only what is missing.
# Two jobs at a time (joblib, one torch thread each). The paper-scale study (GPU) is
# `lengen train -m +experiment=kazemnejad2023/<task>` with a launcher of your choice.
#
# PART=scratchpad: the paper's second table -- addition, summation and parity with the full and
# the minimal scratchpad (task.scratchpad=..., SCRATCHPADS to choose) x 5 PEs x seeds 1-2, each
# family's recipe as above, reported next to the same seeds without a scratchpad in OUT/scratchpad.
set -euo pipefail
PART=${PART:-main}   # main | scratchpad
case $PART in
  main) TASKS=${TASKS:-copy repeat reverse addition sort sort_multi summation parity polynomial}
        SEEDS=${SEEDS:-1,2,3} ;;
  scratchpad) TASKS=${TASKS:-addition summation parity}
        SEEDS=${SEEDS:-1,2} SCRATCHPADS=${SCRATCHPADS:-full,minimal} ;;
  *) echo "unknown PART '$PART'; valid: main, scratchpad" >&2; exit 2 ;;
esac
RUNS=${1:-results/kazemnejad2023-cpu/rundirs}
OUT=${2:-results/kazemnejad2023-cpu}
PES=${PES:-nope,t5,alibi,rope_quarter,ape}
JOBS=${JOBS:-2}
STAGE=${STAGE:-all}   # all | train | report
STUDY=kazemnejad2023-cpu
# The recipe of each task family (conf/recipe/<name>.yaml), chosen on in-range validation
# accuracy averaged over the five PEs (seed 1); see the README's recipe table (recipes.md).
# copy, repeat, reverse, sort: steps2k (>= 95 %); parity, addition, sort_multi, summation,
# polynomial: steps6k (sort_multi >= 95 %; the others the better of the two, below 95 %: see the
# README for what each would take).
declare -A CHOSEN=(
  [copy]=steps2k [repeat]=steps2k [reverse]=steps2k
  [addition]=steps6k [sort]=steps2k [sort_multi]=steps6k
  [summation]=steps6k [parity]=steps6k [polynomial]=steps6k
)
declare -A EXTRA=([lego]=steps2k [scan]=steps2k [pcfg]=steps2k)  # the paper's other tasks (TASKS=...)
for t in "${!EXTRA[@]}"; do CHOSEN[$t]=${EXTRA[$t]}; done
recipe() { echo "${RECIPE:-${CHOSEN[$1]}}"; }

if [[ $STAGE == all || $STAGE == train ]]; then
  start=$(date +%s)
  for task in $TASKS; do
    [[ -n ${CHOSEN[$task]:-} ]] || { echo "unknown task '$task'; valid: ${!CHOSEN[*]}" >&2; exit 2; }
    # shellcheck disable=SC2086  # HYDRA_ARGS: hydra.* overrides (they do not name the run dirs)
    lengen train -m "+experiment=$STUDY/$task" "recipe=$(recipe "$task")" "pe=$PES" "seed=$SEEDS" \
      ${SCRATCHPADS:+"task.scratchpad=$SCRATCHPADS"} runs_root="$RUNS" logger=csv trainer.threads=1 hydra/launcher=joblib hydra.launcher.n_jobs="$JOBS" \
      ${HYDRA_ARGS:-}
  done
  end=$(date +%s)
  echo "study wall time: $(( (end - start) / 60 )) min $(( (end - start) % 60 )) s"
fi

if [[ ($STAGE == all || $STAGE == report) && $PART == scratchpad ]]; then
  # Each format's runs and, beside them, the same tasks, PEs and seeds without a scratchpad.
  dirs=()
  for task in $TASKS; do
    variants=("recipe=$(recipe "$task")")
    for pad in ${SCRATCHPADS//,/ }; do variants+=("recipe=$(recipe "$task"),task.scratchpad=$pad"); done
    for variant in "${variants[@]}"; do
      for seed in ${SEEDS//,/ }; do
        for d in "$RUNS/$STUDY/$task"/*/"$variant/seed$seed"; do [[ -d $d ]] && dirs+=("$d"); done
      done
    done
  done
  (( ${#dirs[@]} )) || { echo "no finished scratchpad runs under $RUNS/$STUDY" >&2; exit 1; }
  # The origin names the tasks and formats: the same command with the defaults would read other runs.
  by="PART=scratchpad TASKS=\"$TASKS\" SCRATCHPADS=$SCRATCHPADS ${RECIPE:+RECIPE=$RECIPE }STAGE=report bash scripts/reproduce_kazemnejad2023.sh${1:+ $1}${2:+ $2}"
  # exact match of the whole target (every step and the answer), then of the final answer alone
  lengen report "${dirs[@]}" out="$OUT/scratchpad" title="'Kazemnejad et al. 2023, CPU scale: scratchpad'" \
    produced_by="'$by'"
  lengen report "${dirs[@]}" out="$OUT/scratchpad/answer" metric=answer_exact_match plots=false \
    title="'Kazemnejad et al. 2023, CPU scale: scratchpad, final answer only'" produced_by="'$by'"
elif [[ $STAGE == all || $STAGE == report ]]; then
  # The report reads only each task's chosen recipe (other candidates' runs are the recipe search).
  dirs=()
  for task in ${REPORT_TASKS:-${!CHOSEN[*]}}; do  # every task with runs (lego/scan/pcfg only if run)
    for d in "$RUNS/$STUDY/$task"/*/"recipe=$(recipe "$task")"; do [[ -d $d ]] && dirs+=("$d"); done
  done
  (( ${#dirs[@]} )) || { echo "no finished runs under $RUNS/$STUDY" >&2; exit 1; }
  # The tables name this script (with its arguments) as their origin, not 45 run-dir arguments.
  lengen report "${dirs[@]}" out="$OUT" title="'Kazemnejad et al. 2023, CPU scale'" \
    produced_by="'${RECIPE:+RECIPE=$RECIPE }${REPORT_TASKS:+REPORT_TASKS=\"$REPORT_TASKS\" }STAGE=report bash scripts/reproduce_kazemnejad2023.sh${1:+ $1}${2:+ $2}'"
fi
