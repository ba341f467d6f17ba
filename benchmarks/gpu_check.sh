#!/usr/bin/env bash
# Issue 15's GPU checks as one prepared run, for a session that is lent a GPU machine
# (the `device` tool: its image has Python 3.12 with PyTorch on CUDA, pytest, scikit-learn,
# tqdm and matplotlib, but not Pyro, and nothing can be fetched there).
#
# Here, once, in the repository root (pure-Python wheels, under 1 MB):
#   echo /.whl/ >> .git/info/exclude
#   python -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 -d .whl pyro-ppl==1.9.2 pyro-api==0.1.2
# Then one device call, with carry [".whl"] and a timeout of about 9 minutes:
#   bash benchmarks/gpu_check.sh
# It writes under $OUT (or ./gpu_check_out): test_device.log (tests/test_device.py, its CUDA
# test included), suite.log, performance_cuda.md and suite_cuda.json (the suite on the GPU,
# 4 minutes of budget), and a one-line train/evaluate smoke run on the GPU.
#
# DEVICE=cpu QUICK=1 bash benchmarks/gpu_check.sh runs the same steps on the CPU, quickly
# (how this script is tested without a GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-gpu_check_out}"
DEVICE="${DEVICE:-cuda}"
PY="${PYTHON:-python3}"
mkdir -p "$OUT"

if ! "$PY" -c "import pyro" 2>/dev/null; then
    ls .whl/*.whl >/dev/null 2>&1 || { echo "error: Pyro is not installed and there are no wheels in .whl (see this script's header)" >&2; exit 2; }
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda available:', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')" | tee "$OUT/machine.txt"

status=0
"$PY" -m pytest -q -p no:cacheprovider tests/test_device.py 2>&1 | tee "$OUT/test_device.log" || status=1

quick=()
[ -n "${QUICK:-}" ] && quick=(--quick)
"$PY" benchmarks/suite.py --device "$DEVICE" --budget-minutes 4 "${quick[@]}" --skip hypergan \
    --out "$OUT/performance_${DEVICE}.md" --json "$OUT/suite_${DEVICE}.json" 2>&1 | tee "$OUT/suite.log" || status=1

# the commands a user runs, on the device: a short training and its evaluation
run="$(mktemp -d)/run"
"$PY" -m pyro_hypervae.cli train --out "$run" --steps 50 --device "$DEVICE" --no-progress 2>&1 | tail -3 | tee "$OUT/train.log" || status=1
"$PY" -m pyro_hypervae.cli evaluate --run "$run" --eval-samples 16 --device "$DEVICE" 2>&1 | tail -8 | tee -a "$OUT/train.log" || status=1
exit $status
