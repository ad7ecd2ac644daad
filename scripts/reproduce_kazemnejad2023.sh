#!/usr/bin/env bash
# Reproduce Kazemnejad et al. (2023) "The Impact of Positional Encoding on Length Generalization
# in Transformers" at CPU scale: 6 tasks x 5 PEs (nope, t5, alibi, rope, ape) x 2 seeds, one
# recipe for every PE (conf/experiment/kazemnejad2023-cpu/), then `lengen report`.
#
#   bash scripts/reproduce_kazemnejad2023.sh [RUNS_ROOT] [OUT]
#
# Runs two jobs at a time (joblib, one torch thread each). Rerunning skips finished runs and
# resumes interrupted ones. The paper-scale study (GPU) is the same command with
# +experiment=kazemnejad2023/<task> and a launcher of your choice (e.g. hydra/launcher=slurm).
set -euo pipefail
RUNS=${1:-runs}
OUT=${2:-results/kazemnejad2023-cpu}
TASKS=${TASKS:-copy reverse addition sort summation parity}
JOBS=${JOBS:-2}
start=$(date +%s)
for task in $TASKS; do
  lengen train -m "+experiment=kazemnejad2023-cpu/$task" runs_root="$RUNS" logger=csv \
    trainer.threads=1 hydra/launcher=joblib hydra.launcher.n_jobs="$JOBS"
done
end=$(date +%s)
echo "study wall time: $(( (end - start) / 60 )) min $(( (end - start) % 60 )) s"
lengen report "$RUNS/kazemnejad2023-cpu" out="$OUT" title="'Kazemnejad et al. 2023, CPU scale'"
