#!/usr/bin/env bash
# lengen's GPU check (issue 15): one prepared script, under 8 minutes on one CUDA GPU.
#
#   1. tests   pytest -m gpu (tests/test_gpu.py: flex attention = dense, bf16, compile, determinism)
#   2. train   lengen train +pe=P task=copy model=paper trainer=paper trainer.max_steps=STEPS, every PE
#              (the first alone, which builds the data cache, then JOBS at a time on the one GPU)
#   3. bench   python scripts/bench_gpu.py: paper shape (L=512, 64 packed rows, bf16-mixed) -- tok/s,
#              fraction of the bf16 matmul peak measured in the same run, step / nope, peak memory;
#              item "paper" is the paper model as configured (dropout 0.1: attention stays on SDPA in
#              training), item "dropout0" the bias PEs and nope without dropout (the FlexAttention path)
#   4. summary python scripts/gpu_summary.py OUT: one table (also OUT/summary.md), targets met/missed
#
#   bash scripts/gpu_check.sh [--out DIR] [--pes "nope t5 ..."] [--steps N] [--jobs N]
#                             [--skip tests,train,bench] [--dry-run] [-h|--help]
#
# --out      where logs, run dirs, pytest.xml, bench.json and summary.md go (default gpu_check_out)
# --pes      the PEs to train and benchmark (default: every conf/pe option)
# --steps    training steps of each run (default 200)
# --jobs     training runs at a time after the first (default 4)
# --skip     parts to leave out, comma-separated (tests, train, bench)
# --dry-run  print the commands and exit (needs no GPU)
# Each part runs under a time limit (TESTS_TIMEOUT, TRAIN_TIMEOUT per PE, BENCH_TIMEOUT seconds) so a
# hang cannot eat the machine; a part that fails does not stop the others. Exit status: the summary's
# (1 if any part failed), 2 on a bad argument, 3 without a CUDA GPU.
set -uo pipefail

PYTHON=${PYTHON:-python}
OUT=gpu_check_out
PES=""
STEPS=200
JOBS=4
SKIP=""
DRY=0
TESTS_TIMEOUT=${TESTS_TIMEOUT:-240}
TRAIN_TIMEOUT=${TRAIN_TIMEOUT:-180}
BENCH_TIMEOUT=${BENCH_TIMEOUT:-240}
PARTS="tests train bench"

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
die() { echo "gpu_check.sh: $1" >&2; exit "${2:-2}"; }

while (( $# )); do
  case $1 in
    --out) [[ $# -ge 2 && -n $2 ]] || die "--out needs a folder"; OUT=$2; shift 2 ;;
    --pes) [[ $# -ge 2 && -n $2 ]] || die "--pes needs PE names, e.g. --pes \"nope t5\""; PES=$2; shift 2 ;;
    --steps) [[ $# -ge 2 && $2 =~ ^[1-9][0-9]*$ ]] || die "--steps needs an integer >= 1, got '${2:-}'"
             STEPS=$2; shift 2 ;;
    --jobs) [[ $# -ge 2 && $2 =~ ^[1-9][0-9]*$ ]] || die "--jobs needs an integer >= 1, got '${2:-}'"
            JOBS=$2; shift 2 ;;
    --skip) [[ $# -ge 2 ]] || die "--skip needs parts, e.g. --skip tests,bench"; SKIP=$2; shift 2 ;;
    --dry-run) DRY=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option '$1'; valid: --out DIR, --pes \"A B\", --steps N, --jobs N, --skip PARTS, --dry-run, --help" ;;
  esac
done

for part in ${SKIP//,/ }; do
  [[ " $PARTS " == *" $part "* ]] || die "unknown part '$part' in --skip; valid: ${PARTS// /, }"
done
skipped() { [[ ",$SKIP," == *",$1,"* ]]; }

VALID_PES=$("$PYTHON" -c "from lengen.compose import conf_dir; print(' '.join(sorted(p.stem for p in (conf_dir() / 'pe').glob('*.yaml'))))") \
  || die "cannot import lengen with $PYTHON (activate the environment lengen is installed in)" 2
PES=${PES:-$VALID_PES}
for pe in $PES; do
  [[ " $VALID_PES " == *" $pe "* ]] || die "unknown PE '$pe' in --pes; valid: $VALID_PES"
done

case $OUT in /*) ;; *) OUT="$PWD/$OUT" ;; esac   # the parts run from the repository root

# Each *_cmd sets CMD, the part's command as a word list.
train_cmd() {  # the issue's command, plus where its files go
  CMD=("$PYTHON" -m lengen.cli train "+pe=$1" task=copy model=paper trainer=paper "trainer.max_steps=$STEPS"
       "trainer.val_every=$(( STEPS > 1 ? STEPS / 2 : 1 ))" trainer.enable_progress_bar=false logger=csv
       study=gpu_check "runs_root=$OUT/runs" data.n_train=20000)
}
tests_cmd() { CMD=("$PYTHON" -m pytest -m gpu tests/test_gpu.py -q -rs "--junitxml=$OUT/pytest.xml"); }
BENCH_ITEMS="paper dropout0"
bench_cmd() {  # bench_cmd ITEM; fails when ITEM has no PE to run
  local pes=() pe extra=()
  if [[ $1 == dropout0 ]]; then  # nope and the PEs with a position bias
    for pe in $PES; do [[ $pe =~ ^(nope|t5|alibi|fire|kerple)$ ]] && pes+=("$pe"); done
    extra=(--dropout 0)
  else
    read -r -a pes <<< "$PES"
  fi
  (( ${#pes[@]} )) || return 1
  CMD=("$PYTHON" scripts/bench_gpu.py --pes "${pes[@]}" "${extra[@]}" --steps 10 --out "$OUT/bench-$1.json")
}
show() { printf 'timeout %s' "$1"; shift; printf ' %q' "$@"; printf '\n'; }

if (( DRY )); then
  if ! skipped tests; then tests_cmd; show "$TESTS_TIMEOUT" "${CMD[@]}"; fi
  if ! skipped train; then for pe in $PES; do train_cmd "$pe"; show "$TRAIN_TIMEOUT" "${CMD[@]}"; done; fi
  if ! skipped bench; then
    for item in $BENCH_ITEMS; do bench_cmd "$item" && show "$BENCH_TIMEOUT" "${CMD[@]}"; done
  fi
  printf '%q scripts/gpu_summary.py %q\n' "$PYTHON" "$OUT"
  exit 0
fi

"$PYTHON" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" \
  || die "torch sees no CUDA GPU here; this check needs one (--dry-run prints its commands)" 3

cd "$(dirname "$0")/.." || exit 2
mkdir -p "$OUT/logs"
: > "$OUT/status.tsv"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$OUT/logs/gpu.txt" 2>&1 || true

run_part() {  # run_part PART ITEM LIMIT CMD...: log to OUT/logs, record exit status and seconds
  local part=$1 item=$2 limit=$3 start rc ms
  shift 3
  start=$(date +%s%N)
  echo "== $part $item: $*"
  timeout "$limit" "$@" > "$OUT/logs/$part-$item.log" 2>&1
  rc=$?
  ms=$(( ($(date +%s%N) - start) / 1000000 ))
  printf '%s\t%s\t%s\t%d.%d\n' "$part" "$item" "$rc" $(( ms / 1000 )) $(( ms % 1000 / 100 )) >> "$OUT/status.tsv"
  (( rc == 0 )) || { echo "   exit $rc; last lines of $OUT/logs/$part-$item.log:"; tail -n 5 "$OUT/logs/$part-$item.log"; }
}

if ! skipped tests; then tests_cmd; run_part tests gpu "$TESTS_TIMEOUT" "${CMD[@]}"; fi
if ! skipped train; then
  first=1
  for pe in $PES; do
    train_cmd "$pe"
    if (( first )); then run_part train "$pe" "$TRAIN_TIMEOUT" "${CMD[@]}"; first=0; continue; fi
    run_part train "$pe" "$TRAIN_TIMEOUT" "${CMD[@]}" &
    while (( $(jobs -rp | wc -l) >= JOBS )); do wait -n; done
  done
  wait
fi
if ! skipped bench; then
  for item in $BENCH_ITEMS; do bench_cmd "$item" && run_part bench "$item" "$BENCH_TIMEOUT" "${CMD[@]}"; done
fi
"$PYTHON" scripts/gpu_summary.py "$OUT"
