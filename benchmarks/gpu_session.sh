#!/usr/bin/env bash
# One short GPU session: medssl's GPU paths checked and the GPU figures of BENCHMARKS.md measured, in one go.
#
#   benchmarks/gpu_session.sh DATA OUTDIR
#
# DATA: the chest X-ray folder ({train,test}/{NORMAL,PNEUMONIA}); OUTDIR receives one file per step. Every step
# has its own time limit, so one that hangs or fails leaves the others' results. Python packages missing on
# the GPU machine can be given as wheels in .whl/ (installed into /tmp/site first).
set -u
DATA=${1:?usage: gpu_session.sh DATA OUTDIR}
OUTDIR=${2:?usage: gpu_session.sh DATA OUTDIR}
mkdir -p "$OUTDIR"
export PYTHONUNBUFFERED=1 MEDSSL_CACHE=/tmp/medssl-cache
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
step() {  # step NAME SECONDS COMMAND...: run COMMAND with a time limit, its output in OUTDIR/NAME.txt
  local name=$1 limit=$2
  shift 2
  local start=$SECONDS
  timeout "$limit" "$@" >"$OUTDIR/$name.txt" 2>&1
  echo "== $name: exit $? in $((SECONDS - start)) s"
  tail -n 3 "$OUTDIR/$name.txt"
}
nvidia-smi -L
python3 -c "import torch, pytorch_lightning, lightly, kornia; print('torch', torch.__version__, 'lightning',
pytorch_lightning.__version__, 'lightly', lightly.__version__, 'kornia', kornia.__version__)"

# 1. Throughput: medssl vs the lightly-tutorial pipeline (16 workers) vs the compute bound, bf16.
step throughput 170 python3 benchmarks/pretrain_throughput.py --data "$DATA" --device cuda --workers 16 \
  --steps 100 --warmup 10
# 2. Time to a validation kNN accuracy, paper vs default recipe, bf16.
step time_to_accuracy 180 python3 benchmarks/time_to_accuracy.py --data "$DATA" --device cuda --target 0.93 \
  --max-epochs 40
# 3. The CLI end to end on the GPU: pre-train (bf16), then evaluate the encoder.
step cli_pretrain 60 python3 -m medssl.cli pretrain --method vicreg --data "$DATA" --image-size 64 --epochs 3 \
  --out /tmp/gpu_run
cp /tmp/gpu_run/history.csv "$OUTDIR/cli_history.csv" 2>/dev/null
step cli_evaluate 45 python3 -m medssl.cli evaluate --encoder /tmp/gpu_run --data "$DATA" --protocol knn,linear \
  --out /tmp/gpu_eval
# 4. The test files whose code paths change on a GPU (augmentation on CUDA, pre-training, resume, NaN stop).
step pytest 80 python3 -m pytest -q -p no:cacheprovider tests/train/test_augment.py tests/train/test_pretrain.py \
  -k "not imagenet"
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv
