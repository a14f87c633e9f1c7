#!/usr/bin/env bash
# The CUDA paths, run once on a machine with an NVIDIA GPU (the project never needs one):
# the PyTorch MXINT quantizer's bit-identity with the NumPy reference on the GPU, and the
# embedded model's perplexity with `eval --device cuda` next to the same run on the CPU.
# Usage: scripts/cuda_check.sh [PYTHON]   (the Python must hold torch with CUDA)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-python3}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
"$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print('torch', torch.__version__, torch.cuda.get_device_name(0))"
"$PY" -m pytest -q -p no:cacheprovider tests/reference/test_mxint_torch.py -k cuda
for device in cuda cpu; do
    "$PY" -m lqer_hw.cli eval --model default --data default --device $device
    "$PY" -m lqer_hw.cli eval --model default --data default --method l2qer --rank 32 \
        --w-width 4 --a-width 8 --block 16 --calib default --device $device
    "$PY" -m lqer_hw.cli eval --model default --data default --method l2qer --rank 32 \
        --w-width 4 --a-width 8 --block 16 --calib default --bit-true --device $device
done
