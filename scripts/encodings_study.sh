#!/usr/bin/env bash
# Mini-study of the encodings that followed Kazemnejad et al. (issue 11): addition, least-significant
# digit first, trained on 1-8 digits and evaluated on 1-16, with one recipe for all
# (conf/experiment/encodings-cpu.yaml: tiny model, conf/recipe/steps6k), 2 seeds:
#   nope | fire | fire + randomized positions | abacus on nope | position coupling (ape on coupled ids)
#
#   bash scripts/encodings_study.sh [RUNS_ROOT] [OUT]
#   VARIANTS="nope fire" bash scripts/encodings_study.sh       # some of them
#
# Run dirs go to RUNS_ROOT (default results/encodings-cpu/rundirs, committed without checkpoints),
# so a rerun skips finished runs and only rebuilds the report. Two jobs at a time, one thread each.
set -euo pipefail
RUNS=${1:-results/encodings-cpu/rundirs}
OUT=${2:-results/encodings-cpu}
VARIANTS=${VARIANTS:-nope fire fire_randomized abacus coupling}
JOBS=${JOBS:-2}
STAGE=${STAGE:-all}   # all | train | report
declare -A ARGS=(
  [nope]="pe=nope"
  [fire]="pe=fire"
  [fire_randomized]="pe=fire +pe.randomize=true +pe.max_positions_random=256"
  [abacus]="pe=abacus"
  [coupling]="pe=ape +task.positions=coupled +task.format.pad_operands=true"
)
if [[ $STAGE == all || $STAGE == train ]]; then
  start=$(date +%s)
  for v in $VARIANTS; do
    [[ -n ${ARGS[$v]:-} ]] || { echo "unknown variant '$v'; valid: ${!ARGS[*]}" >&2; exit 2; }
    # shellcheck disable=SC2086  # ARGS holds several overrides
    lengen train -m +experiment=encodings-cpu ${ARGS[$v]} runs_root="$RUNS" logger=csv trainer.threads=1 \
      hydra/launcher=joblib hydra.launcher.n_jobs="$JOBS"
  done
  end=$(date +%s)
  echo "study wall time: $(( (end - start) / 60 )) min $(( (end - start) % 60 )) s"
fi
if [[ $STAGE == all || $STAGE == report ]]; then
  lengen report "$RUNS/encodings-cpu" out="$OUT" title="'Encodings after Kazemnejad et al., CPU scale'"
fi
