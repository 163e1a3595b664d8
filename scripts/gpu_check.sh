#!/usr/bin/env bash
# The GPU path's one short check: Conv-4 and ResNet-20 (batch 256) on CUDA, each execution
# option (bf16 autocast, channels-last, torch.compile) against the default fp32 loop, in
# samples/s; packs of K = 1..64 stacked nets against the solo bare loop (target for the MNIST-1D
# MLP: K=64 >= 30x); then the library's tests, which cover the same switches on the CPU.
#
# Usage, from the repository root on a machine with a CUDA GPU:
#   scripts/gpu_check.sh [OUT]        # OUT defaults to out/gpu-check
set -euo pipefail
out="${1:-out/gpu-check}"
python - <<'PY'
import torch
assert torch.cuda.is_available(), "no CUDA device: this check is for a GPU machine"
print(torch.cuda.get_device_name(0), "bf16:", torch.cuda.is_bf16_supported())
PY
study bench --quick --part options --device cuda --out "$out" --no-docs
study bench --quick --part packed --device cuda --out "$out/packed" --no-docs
python -m pytest -q tests/test_execution.py
