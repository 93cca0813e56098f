#!/usr/bin/env bash
# The GPU rows of docs/performance.md in one go, on a machine with one CUDA GPU:
#   bash benchmarks/gpu_rows.sh [out_dir]
# Each line prints its own target; the JSON reports land in out_dir (default gpu_rows/).
set -euo pipefail
out=${1:-gpu_rows}
# the fused soft-DTW kernels against the wavefront on the GPU first (fails fast if Triton breaks)
${PYTHON:-python} -m pytest -q -p no:cacheprovider tests/unit/test_sdtw_fused.py
mkdir -p "$out"
py=${PYTHON:-python}
$py benchmarks/sdtw_kmeans.py --device cuda --n 5000 --skip-tslearn --compare-cpu --compare-torch \
    --json "$out/sdtw_5k.json"
$py benchmarks/sdtw_kmeans.py --device cuda --n 1000000 --skip-tslearn --json "$out/sdtw_1m.json"
$py benchmarks/sdtw_kmeans.py --device cuda --n 100000 --sweep --skip-tslearn \
    --json "$out/sdtw_sweep.json"
$py benchmarks/features_throughput.py --device cuda --n 400 --plain-batch 128 \
    --json "$out/features_fp32.json"
$py benchmarks/features_throughput.py --device cuda --n 400 --plain-batch 128 --dtype bfloat16 \
    --json "$out/features_bf16.json"
