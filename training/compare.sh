#!/usr/bin/env bash
# Reproduces each row of the README's model comparison: same patient-grouped
# split (seed 0), same budget (5 epochs), CPU. Run one row: training/compare.sh lite0
# Each run writes runs/<row>/ (best_model.pth, train_log.jsonl, split.json).
set -euo pipefail
DATA=${DATA:-../shared/data/chest_xray/train}
PY=${PY:-.venv/bin/python}
COMMON=(--data-dir "$DATA" --epochs 5 --batch-size 32 --workers 1 --seed 0)

row() {
  case "$1" in
    resnet18)        "$PY" -m training.train "${COMMON[@]}" --model resnet18 --lr 1e-3 --output-dir runs/resnet18 ;;
    lite0)           "$PY" -m training.train "${COMMON[@]}" --model efficientnet_lite0 --pretrained imagenet \
                       --freeze-stages 6 --lr 1e-3 --output-dir runs/lite0 ;;
    lite0_hflip)     "$PY" -m training.train "${COMMON[@]}" --model efficientnet_lite0 --pretrained imagenet \
                       --freeze-stages 6 --lr 1e-3 --hflip --output-dir runs/lite0_hflip ;;
    lite0_smooth_sampler) "$PY" -m training.train "${COMMON[@]}" --model efficientnet_lite0 --pretrained imagenet \
                       --freeze-stages 6 --lr 1e-3 --balance sampler --label-smoothing 0.1 \
                       --output-dir runs/lite0_smooth_sampler ;;
    *) echo "unknown row: $1" >&2; exit 2 ;;
  esac
}

for name in "${@:-resnet18 lite0 lite0_hflip lite0_smooth_sampler}"; do
  for r in $name; do row "$r"; done
done
