cd "$(git rev-parse --show-toplevel)"  # README "Speed": the shipped recipe, then --compile --low-res-size 160 --low-res-epochs 3 (SEED=0, 1)
D=../shared/data/chest_xray/train
common="--data-dir $D --split-file models/split.json --pretrained imagenet --model efficientnet_lite0 --freeze-stages 6 --epochs 5 --batch-size 32 --lr 1e-3 --augment robust --min-scale 0.6 --ema 0.99 --workers 2 --no-progress --no-onnx --max-train-images 1200 --seed ${SEED:-0}"
for r in base fast; do
  extra=""; [ $r = fast ] && extra="--compile --low-res-size 160 --low-res-epochs 3"
  s=$(date +%s)
  .venv/bin/python -m training.train $common $extra --output-dir runs/cpu_pair/${r}_s${SEED:-0} > /tmp/cpu_pair_${r}_s${SEED:-0}.log 2>&1
  echo "$r train rc=$? $(( $(date +%s) - s )) s" >> /tmp/cpu_pair.txt
  .venv/bin/python -m training.evaluate --checkpoint runs/cpu_pair/${r}_s${SEED:-0}/best_model.pth --data-dir $D --split-file models/split.json --bootstrap 0 --backend torch --checkpoint-operating-point --no-progress --output runs/cpu_pair/${r}_s${SEED:-0}/test.json > /tmp/cpu_pair_eval_${r}_s${SEED:-0}.log 2>&1
  echo "$r eval rc=$?" >> /tmp/cpu_pair.txt
done
