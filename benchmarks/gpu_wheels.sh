#!/usr/bin/env bash
# Fetch, on a machine with network, the wheels a lent GPU machine lacks, into .whl/ (git-ignored locally),
# for benchmarks/gpu_session.sh to install offline there. Targets CPython 3.12 on x86-64 Linux (the GPU
# image's interpreter, which already has CuPy, Numba, numba-cuda, h5py, NumPy, SciPy, torch, pandas,
# matplotlib).
#
#   benchmarks/gpu_wheels.sh                  # what recon needs beyond the image: pydicom
#   benchmarks/gpu_wheels.sh --pytomography   # also PyTomography 3.4.0 and the packages it needs beyond the image
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
WANT=(pydicom==3.0.2)
if [ "${1:-}" = --pytomography ]; then
  WANT+=(pytomography==3.4.0 fft-conv-pytorch==1.2.0 kornia==0.8.1 kornia_rs==0.1.9 nibabel==5.3.2 rt-utils==1.2.7
         torchrbf==0.0.1 uproot==5.6.3 awkward==2.8.5 awkward-cpp==47 cramjam==2.10.0)
fi
grep -qx '/.whl/' .git/info/exclude 2> /dev/null || echo '/.whl/' >> .git/info/exclude
mkdir -p .whl
PLAT=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64; do
  PLAT+=(--platform "$p")
done
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${PLAT[@]}" \
  -d .whl "${WANT[@]}"
du -sh .whl
