#!/usr/bin/env bash
# The adversarial-training sweep behind docs/results/adversarial-training.md (Gao Fig. 2, Tables
# I-II, V-VI and CAT) on photos-BadNets and MNIST-Blended. Every cell is one `backdoorlab run` of a
# base config in configs/at-sweep/ with --set overrides; a cell whose result.json exists is skipped,
# so an interrupted sweep resumes where it stopped.
set -euo pipefail
BIN=${BIN:-.venv/bin}
OUT=${OUT:-runs/at-sweep}
ONLY=${1:-all}   # photos | mnist | all
ORDER=${2:-forward}  # reverse: the same cells last to first, for a second worker beside a first

CELLS=()
cell() {  # cell DATASET NAME [--set ...]: queue one cell (arguments contain no spaces)
  CELLS+=("$*")
}

run_cell() {
  local ds=$1 name=$2; shift 2
  local dir="$OUT/$ds/$name"
  [ -f "$dir/result.json" ] && return 0
  mkdir -p "$OUT/$ds"
  # a second worker skips a cell that a live worker is running (a dead worker's lock is stale)
  local lock="$dir.lock"
  if [ -f "$lock" ] && kill -0 "$(cat "$lock")" 2>/dev/null; then return 0; fi
  echo $$ > "$lock"
  echo "== $ds/$name"
  # a cell that fails (e.g. training diverged) is reported and left out; the sweep goes on
  "$BIN/backdoorlab" run "configs/at-sweep/$ds.yaml" --quiet --overwrite --out "$dir" \
    --set "name=$ds-$name" "$@" || echo "!! $ds/$name failed (exit $?); left out of the report"
  rm -f "$lock"
}

sweep() {  # sweep DATASET "LINF BUDGETS" "L2 BUDGETS" "SPATIAL BUDGETS" RELAX_THREAT RELAX_EPS
  local ds=$1 linf=$2 l2=$3 spatial=$4 rthreat=$5 reps=$6
  cell "$ds" none
  for threat in linf l2 spatial; do
    case $threat in linf) budgets=$linf ;; l2) budgets=$l2 ;; spatial) budgets=$spatial ;; esac
    for eps in $budgets; do
      cell "$ds" "at-$threat-$eps" --set defense.name=at --set defense.threat=$threat \
        --set defense.eps=$eps --set defense.steps=3
      cell "$ds" "random-$threat-$eps" --set defense.name=random --set defense.threat=$threat \
        --set defense.eps=$eps
    done
  done
  for beta in 0.9 0.8 0.7 0.6; do
    cell "$ds" "at-$rthreat-$reps-beta$beta" --set defense.name=at --set defense.threat=$rthreat \
      --set defense.eps=$reps --set defense.steps=3 --set defense.beta=$beta
  done
}

if [ "$ONLY" = photos ] || [ "$ONLY" = all ]; then
  # CIFAR-scale budgets of Gao Fig. 2 (photos are 32x32 natural images like CIFAR-10)
  sweep photos-badnets "0.0157 0.0314 0.0471 0.0627" "0.251 0.502 1.004 2.008" \
    "0.025 0.05 0.075 0.1" spatial 0.05
  cell photos-badnets cat --set defense.name=cat --set defense.steps=3
fi
if [ "$ONLY" = mnist ] || [ "$ONLY" = all ]; then
  # MNIST budgets are larger (its digits survive far stronger perturbations than CIFAR images)
  sweep mnist-blended "0.05 0.1 0.2 0.3" "0.5 1.0 2.0 3.0" "0.025 0.05 0.075 0.1" linf 0.2
  for es in 0.01 0.025 0.05; do for el in 0.1 0.2; do
    cell mnist-blended "cat-s$es-l$el" --set defense.name=cat --set defense.steps=3 \
      --set defense.eps_s=$es --set defense.eps_l=$el
  done; done
fi

if [ "$ORDER" = reverse ]; then
  for ((i = ${#CELLS[@]} - 1; i >= 0; i--)); do run_cell ${CELLS[i]}; done
else
  for c in "${CELLS[@]}"; do run_cell $c; done
fi
