#!/usr/bin/env bash
# Seed spread of training recipes at one fixed budget: each recipe is trained with seeds 0 1 2 on the
# shipped patient-grouped split (models/split.json), then scored on a fixed sample of its test part,
# clean and under the stress perturbations. The table: python -m training.spread runs/seeds/*/seed*
#
#   training/seeds.sh baseline robust          (EPOCHS, MAX_TRAIN, SEEDS, TEST_IMAGES override the budget)
set -euo pipefail
DATA=${DATA:-../shared/data/chest_xray/train}
PY=${PY:-.venv/bin/python}
EPOCHS=${EPOCHS:-3}
MAX_TRAIN=${MAX_TRAIN:-1200}
SEEDS=${SEEDS:-"0 1 2"}
TEST_IMAGES=${TEST_IMAGES:-300}
STRESS=${STRESS:-zoom_in_20,zoom_out_15,shift_8,gamma_0.7,blur_1.5,noise_8,jpeg_30,combined,site}
COMMON=(--data-dir "$DATA" --split-file models/split.json --model efficientnet_lite0 --pretrained imagenet
        --freeze-stages 6 --lr 1e-3 --epochs "$EPOCHS" --max-train-images "$MAX_TRAIN" --batch-size 32
        --workers 1 --threshold-goal youden --no-onnx --no-progress)

recipe() {
  case "$1" in
    baseline) echo "" ;;                                              # the shipped recipe
    robust)   echo "--augment robust --min-scale 0.6 --ema 0.99" ;;   # stress-family augmentation + weight EMA
    robust_smooth) echo "--augment robust --min-scale 0.6 --ema 0.99 --label-smoothing 0.1" ;;  # + smoothing
    robust_mixup) echo "--augment robust --min-scale 0.6 --ema 0.99 --mixup 0.2" ;;            # + mixup
    robust_equalize) echo "--augment robust --min-scale 0.6 --ema 0.99 --intensity equalize" ;;  # + hist. eq.
    # deeper ImageNet backbones at their native 240 / 260 px; 7 frozen stages = the same depth as Lite0's 6
    lite1_robust) echo "--model efficientnet_lite1 --freeze-stages 7 --augment robust --min-scale 0.6 --ema 0.99" ;;
    lite2_robust) echo "--model efficientnet_lite2 --freeze-stages 7 --augment robust --min-scale 0.6 --ema 0.99" ;;
    *) echo "unknown recipe: $1" >&2; exit 2 ;;
  esac
}

for name in "$@"; do
  extra=$(recipe "$name")
  for seed in $SEEDS; do
    out=runs/seeds/$name/seed$seed
    if [ ! -f "$out/best_model.pth" ]; then
      # shellcheck disable=SC2086
      "$PY" -m training.train "${COMMON[@]}" $extra --seed "$seed" --output-dir "$out"
    fi
    "$PY" -m training.evaluate --checkpoint "$out/best_model.pth" --data-dir "$DATA" \
      --split-file models/split.json --split test --max-images "$TEST_IMAGES" --stress "$STRESS" \
      --bootstrap 0 --backend torch --checkpoint-operating-point --workers 1 --no-progress \
      --output "$out/stress.json"
  done
done
