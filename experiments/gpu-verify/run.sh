#!/usr/bin/env bash
# The one prepared GPU check of issue 15 (bullet 4), to run as it stands when a GPU machine is
# lent (no download: the targets have random weights). From the repository root:
#
#   OUT=/some/folder bash experiments/gpu-verify/run.sh
#
# 1. exactness: every proposer under decode.verify=graphs gives plain greedy's tokens and the
#    dynamic path's accepted lengths (tiny random Llama, fp32, on the GPU);
# 2. a random-weight Llama-3.1-8B-shaped target in bf16: one verify forward of q = 1..64 new
#    tokens over 256 cached ones, eager (dynamic, static) against CUDA graphs, with the
#    weight-read floor (about 3.3 ms on an H200), and one EAGLE-3 draft step per mode.
# Each part writes its JSON under $OUT; the log is $OUT/run.log.
set -uo pipefail
OUT="${OUT:-experiments/gpu-verify/results}"
mkdir -p "$OUT"
PY="${PYTHON:-python}"
{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
  "$PY" -c "import torch, transformers; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'transformers', transformers.__version__)"
  "$PY" experiments/gpu-verify/exactness.py --mode graphs > "$OUT/exactness.json"
  echo "exactness rc=$?"; cut -c1-300 "$OUT/exactness.json"
  "$PY" -m specbench.bench --verify --dtype=bfloat16 --verify-mode=dynamic,static,graphs \
      model=llama3-8b model.source=random algorithm=eagle3 --json "$OUT/verify-llama3-8b-bf16.json"
  echo "bench rc=$?"
} 2>&1 | tee "$OUT/run.log"
