#!/usr/bin/env bash
# One prepared device run: CUDA training throughput, then the shipped recipe against the
# progressive/compiled one at full budget (2 seeds), each scored on its held-out test part.
# Env: DEVICE (cuda), IMAGES, WORKERS, EPOCHS, BUDGET (seconds after which no new step starts).
#
# How to run it (a GPU machine lent through the workplace's device tool): build the pack with
# ../shared/tools/gpu-pack lite0, keep a random.Random(0).sample of 2,800 of its sorted images (the
# pack, the tracked files and the SQLAlchemy wheel must fit 64 MiB), download the SQLAlchemy wheel
# into .whl/, copy this script to .devpack/ and run `BUDGET=420 bash .devpack/gpu_run.sh` with
# carry [".devpack", ".whl"]. Results of the 2026-11-26 run: models/comparison/gpu/.
set -u
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
DEVICE=${DEVICE:-cuda}; IMAGES=${IMAGES:-2048}; WORKERS=${WORKERS:-14}; EPOCHS=${EPOCHS:-5}; BUDGET=${BUDGET:-470}
MAXTRAIN=${MAXTRAIN:-}
export PYTHONUNBUFFERED=1
PY=${PY:-python3}
if [ -d .whl ] && [ -z "${NO_WHL:-}" ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD/.devpack:${PYTHONPATH:-}
W=.devpack/lite0_fp16.pt; D=${DATA:-.devpack/train}
L=/tmp/gpulogs; mkdir -p $L
log() { echo "[$SECONDS s] $*" | tee -a "$OUT/steps.txt"; pack; }
# $OUT takes at most 8 files: everything else travels in one tarball, refreshed after every step.
pack() { tar czf "$OUT/all.tgz" -C / tmp/gpulogs $(find runs/gpu -name '*.json' -o -name '*.jsonl' 2>/dev/null | sed "s|^|$PWD/|;s|^/||") 2>/dev/null; }
room() { [ "$SECONDS" -lt "$BUDGET" ] || { log "skipped (budget): $*"; return 1; }; }
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; nproc; $PY -c "import torch; print(torch.__version__)"; } > "$L/machine.txt" 2>&1
log start
if [ "${BENCH:-1}" = 1 ] && room bench128; then
  timeout 240 $PY benchmarks/training.py --data-dir $D --device $DEVICE --batch-size ${BENCH_BATCH:-128} --workers $WORKERS \
    --images $IMAGES --pretrained $W --rounds ${ROUNDS:-1} > "$OUT/bench_b128.txt" 2>&1
  log "bench128 rc=$?"
fi
common=(--data-dir $D --pretrained $W --model efficientnet_lite0 --freeze-stages 6 --epochs $EPOCHS --batch-size 32
  --lr 1e-3 --augment robust --min-scale 0.6 --ema 0.99 --workers $WORKERS --no-progress --no-onnx --device $DEVICE)
[ -n "$MAXTRAIN" ] && common+=(--max-train-images $MAXTRAIN)
fast=(--compile --low-res-size 160 --low-res-epochs 3)
for run in ${RUNS:-base:0 fast:0 base:1 fast:1 amp_fast:0 amp_fast:1}; do
  recipe=${run%:*}; seed=${run#*:}
  case $recipe in base) extra=(--no-amp);; fast) extra=(--no-amp "${fast[@]}");; amp_fast) extra=(--amp "${fast[@]}");; esac
  dir=runs/gpu/${recipe}_s$seed
  room "$dir" || continue
  start=$SECONDS
  timeout 150 $PY -m training.train "${common[@]}" "${extra[@]}" --seed $seed --output-dir $dir > "$L/train_${recipe}_s$seed.txt" 2>&1
  log "$dir train rc=$? $((SECONDS - start)) s"
  [ -f $dir/best_model.pth ] || continue
  timeout 90 $PY -m training.evaluate --checkpoint $dir/best_model.pth --data-dir $D --split-file $dir/split.json \
    --bootstrap 0 --workers $WORKERS --device $DEVICE --backend torch --checkpoint-operating-point --stress \
    --no-progress --output $dir/test.json > "$L/eval_${recipe}_s$seed.txt" 2>&1
  log "$dir eval rc=$?"
done
log done
