#!/usr/bin/env bash
# One short session on a borrowed GPU machine: install, test, benchmark, write JSON (target: < 5 min on an
# H100/H200).
#
#   benchmarks/gpu_session.sh                  # on the GPU machine (installs the gpu extra first)
#   benchmarks/gpu_session.sh --pytomography   # also PyTomography on the same study (needs torch + pytomography)
#   benchmarks/gpu_session.sh --cpu-dry-run    # the same steps on the CPU (no install, no GPU): checks the script
# A lent GPU machine has no network: fetch what its image lacks first, on a machine with network, with
# benchmarks/gpu_wheels.sh [--pytomography] (into .whl/), and carry .whl/ along.
#
# Steps: 1. install (GPU mode only): wheels carried in .whl/ if any, then the project (without its gpu extra
# where CuPy is already installed, e.g. an image with cupy-cuda13x); 2. registers / shared memory / sm_90 occupancy of every
# kernel from ptxas; 3. tests: the CUDA kernel tests (PTX, launch sizes, simulator parity) and, on a GPU, the
# GPU tests with the full-size 128^3 CPU/GPU parity; 4. the 64 and 128 OSEM benchmarks; 5. session.json with
# the step times. Output: benchmarks/results/gpu_session_<cuda|cpu>_<date>/. PYTHON selects the interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
MODE=cuda
PYTOMO=""
for arg in "$@"; do
  case "$arg" in
    --cpu-dry-run) MODE=cpu ;;
    --pytomography) PYTOMO="--pytomography" ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "unknown option: $arg" >&2; exit 2 ;;
  esac
done
OUT="benchmarks/results/gpu_session_${MODE}_$(date -u +%Y-%m-%d)"
mkdir -p "$OUT"
STEPS="$OUT/steps.tsv"
: > "$STEPS"
step() {  # step NAME COMMAND...: run, record wall seconds and exit status, keep going on failure
  local name="$1"; shift
  local t0=$SECONDS rc=0
  echo "== $name: $*" >&2
  "$@" || rc=$?
  printf '%s\t%d\t%d\n' "$name" "$((SECONDS - t0))" "$rc" >> "$STEPS"
}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # the checkout itself, installed or not
install() {  # wheels carried in .whl/ (no network on a lent GPU machine), then the project
  if compgen -G ".whl/*.whl" > /dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile .whl/*.whl || return 1
  fi
  if "$PY" -c "import cupy" 2> /dev/null; then  # an image with CuPy for its own CUDA (e.g. cupy-cuda13x)
    "$PY" -m pip install -q --no-deps --no-build-isolation -e . || return 1
  else
    "$PY" -m pip install -q -e '.[gpu]' || return 1
  fi
  "$PY" -c "import cupy, numba.cuda, h5py, pydicom, recon"  # fails naming the first missing package
}
if [ "$MODE" = cuda ]; then
  step install install
  step gpu_check "$PY" -c "from recon.backend import device_info; print(device_info('cuda'))"
fi
step ptxas "$PY" benchmarks/ptxas_report.py --out "$OUT/ptxas_sm90.json"
# the simulator parity runs the same kernels as Python threads (about 1.5 min): on a GPU the real parity
# tests below replace it
SIM=""
if [ "$MODE" = cuda ]; then SIM="not simulator"; fi
step tests_cuda_kernels "$PY" -m pytest -q -p no:cacheprovider tests/test_cuda_kernels.py tests/test_spect_band.py -k "$SIM"
if [ "$MODE" = cuda ]; then
  step tests_gpu_full_size env RECON_PARITY_CASE=128 "$PY" -m pytest -q -p no:cacheprovider -m gpu tests/
fi
step bench_64 "$PY" benchmarks/spect_osem.py --case 64 --device "$MODE" --repeats 3 --kernel-report --out "$OUT"
step bench_128 "$PY" benchmarks/spect_osem.py --case 128 --device "$MODE" --repeats 3 --kernel-report --out "$OUT" $PYTOMO
"$PY" - "$OUT" "$MODE" <<'PYEOF'
import json, subprocess, sys
from pathlib import Path
out, mode = Path(sys.argv[1]), sys.argv[2]
steps = [dict(zip(("step", "seconds", "exit_status"), (r[0], int(r[1]), int(r[2]))))
         for r in (line.split("\t") for line in (out / "steps.tsv").read_text().splitlines())]
try:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
except OSError:
    commit = ""
results = {p.name: json.loads(p.read_text()) for p in sorted(out.glob("spect_osem_*.json"))}
session = {"mode": mode, "commit": commit, "steps": steps,
           "total_seconds": sum(s["seconds"] for s in steps), "all_passed": all(s["exit_status"] == 0 for s in steps),
           "osem_end_to_end_s": {k: v["seconds"]["osem_end_to_end"] for k, v in results.items()},
           "measured_over_bandwidth_bound": {  # measured seconds / roofline seconds of each pass, per device model
               k: {dev: {p: v["seconds"][p] / b[p] for p in ("forward_all_views", "back_all_views")}
                   for dev, b in v["roofline_cuda"]["bound_seconds"].items()} for k, v in results.items()},
           "device": next(iter(results.values()))["device"] if results else None}
(out / "session.json").write_text(json.dumps(session, indent=2) + "\n")
print(json.dumps({k: session[k] for k in ("mode", "total_seconds", "all_passed", "osem_end_to_end_s")}, indent=2))
sys.exit(0 if session["all_passed"] else 1)
PYEOF
