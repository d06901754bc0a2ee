#!/usr/bin/env bash
# The GPU checks of issue 6 in one command, sized for one 15-minute device lease: about
# 8 minutes on one H100 (float32 tests, then `throughput.py --gpu-only`: jaxdend and Jaxley
# float32 on the GPU, the GPU's roofline, float32 on the GPU against float64 on the CPU).
# It uses the machine's own JAX with CUDA (the image's python3 has jax, equinox, diffrax,
# optax); jaxdend runs from the working tree and the few packages the image lacks come as
# wheels.
#
# Prepare on the development machine (nothing of it is committed: .gitignore lists both):
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \
#       -d .whl jaxley==0.14.0 tridiax==0.2.1 morphio==3.5.0
#   mkdir -p .gpu_data && cp ../shared/data/morphology/C060114A5_derived.swc .gpu_data/
# Run with the device tool:
#   run(command="bash benchmarks/gpu_check.sh", carry=[".whl", ".gpu_data"], timeout_s=570)
# Back here, put the GPU rows into the full run's JSON and update benchmarks/README.md:
#   python benchmarks/throughput.py --merge <files_at>/throughput_gpu.json
# Units: s, compartment-steps/s, mV.
set -uo pipefail
OUT=${OUT:-/tmp/jaxdend_gpu_check}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
start=$(date +%s)

if ls .whl/*.whl >/dev/null 2>&1; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
# GPU programs never call jaxdend's native CPU code, so skip its build (~20-40 s of the lease);
# the CPU float64 reference then takes the XLA path (equal to the native one to ~1e-11 mV)
export JAXDEND_NATIVE=${JAXDEND_NATIVE:-0}
# the real cell: throughput.py and the tests look for ../shared/data beside the repository
if [ -d .gpu_data ] && [ ! -d ../shared/data ]; then
    mkdir -p ../shared/data/morphology && cp .gpu_data/*.swc ../shared/data/morphology/ \
        || echo "could not place the real cell: its cases are skipped"
fi

{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    $PY -c "import jax, equinox, diffrax, optax; print('jax', jax.__version__, jax.devices())"
} 2>&1 | tee "$OUT/gpu.txt"

# float32 against float64 (simulate, sweeps, the unstable-step error) with JAX's default
# device the GPU (not the CPU emulation of the GPU's code, which the run below replaces)
timeout 150 $PY -m pytest -q -p no:cacheprovider -o addopts="" \
    -k "float32 and not gpu_code_path" \
    tests/test_simulate.py tests/test_batch.py tests/test_errors.py 2>&1 \
    | tail -n 25 | tee "$OUT/tests.txt"

left=$(( 540 - ($(date +%s) - start) ))
timeout "$left" $PY benchmarks/throughput.py --gpu-only --json "$OUT/throughput_gpu.json" \
    --accel-platform "${ACCEL_PLATFORM:-gpu}" ${GPU_CHECK_ARGS:-} \
    2>&1 | tee "$OUT/throughput_gpu.log"
echo "gpu_check: $(( $(date +%s) - start )) s"
