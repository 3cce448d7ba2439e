"""Registers, shared memory and theoretical sm_90 occupancy of every CUDA kernel, without a GPU.

    python benchmarks/ptxas_report.py [--out FILE.json]

Each kernel of :mod:`kernels.spect_cuda` is compiled to PTX for compute capability 9.0 with
``numba.cuda.compile_ptx`` (the argument types of ``kernel_signatures()``), then assembled by
``ptxas -arch=sm_90 -c -v`` (relocatable: numba links its reshape helper at load time) from the ``nvidia-cuda-nvcc-cu12`` wheel (found through the installed
package, or ``ptxas`` on PATH), whose report gives registers per thread, static shared memory and
spill bytes; the dynamic shared memory of the 128 case comes from ``spect_cuda.shared_bytes``. Occupancy follows the CUDA occupancy rules for sm_90 (H100/H200): 65536 registers
per SM allocated per warp in units of 256, at most 64 warps, 32 blocks and 228 KB of shared
memory per SM (1 KB reserved per block), with the launch sizes of ``launch_config``.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

logger = logging.getLogger("benchmarks.ptxas_report")

SM90 = {"regs_per_sm": 65536, "reg_unit_per_warp": 256, "max_warps": 64, "max_blocks": 32,
        "smem_per_sm": 228 * 1024, "smem_reserved_per_block": 1024, "max_regs_per_thread": 255}


def find_ptxas() -> str | None:
    """Path of ptxas: the nvidia-cuda-nvcc-cu12 wheel's, else the one on PATH, else None."""
    try:
        import nvidia.cuda_nvcc  # noqa: PLC0415

        for base in nvidia.cuda_nvcc.__path__:
            cand = Path(base) / "bin" / "ptxas"
            if cand.exists():
                return str(cand)
    except ImportError:
        pass
    return shutil.which("ptxas")


def occupancy_sm90(regs: int, smem_bytes: int, threads: int) -> dict[str, Any]:
    """Theoretical occupancy (active warps / 64) of a kernel on sm_90, and what limits it."""
    warps = math.ceil(threads / 32)
    per_warp = math.ceil(max(regs, 1) * 32 / SM90["reg_unit_per_warp"]) * SM90["reg_unit_per_warp"]
    limits = {
        "threads": SM90["max_warps"] // warps,
        "registers": (SM90["regs_per_sm"] // per_warp) // warps,
        "shared_memory": SM90["smem_per_sm"] // (smem_bytes + SM90["smem_reserved_per_block"]),
        "blocks": SM90["max_blocks"],
    }
    blocks = min(limits.values())
    limiter = min(limits, key=limits.get)
    return {"blocks_per_sm": blocks, "occupancy": blocks * warps / SM90["max_warps"], "limited_by": limiter}


def report(ptxas: str | None = None) -> dict[str, Any]:
    """Per kernel: registers, spill and shared-memory bytes from ptxas, launch size for the 128 case, occupancy."""
    from numba import cuda  # noqa: PLC0415

    from kernels import spect_cuda  # noqa: PLC0415

    ptxas = ptxas or find_ptxas()
    sigs = spect_cuda.kernel_signatures()
    launch = spect_cuda.launch_config(n_sub_views=15, n_views=120, nz=128, ny=128, nx=128, nc=128)
    out: dict[str, Any] = {"tool": "numba.cuda.compile_ptx(cc=(9, 0)) + ptxas -arch=sm_90 -v",
                           "ptxas": None, "launch_case": "128^3, 120 views, 15 views per subset", "kernels": {}}
    if ptxas is None:
        out["error"] = "ptxas not found (pip install nvidia-cuda-nvcc-cu12)"
        return out
    out["ptxas"] = subprocess.run([ptxas, "--version"], capture_output=True, text=True).stdout.strip().splitlines()[-1]
    with tempfile.TemporaryDirectory() as tmp:
        for name, body in spect_cuda.KERNEL_BODIES.items():
            ptx, _ = cuda.compile_ptx(body, sigs[name], cc=(9, 0))
            src = Path(tmp) / f"{name}.ptx"
            src.write_text(ptx)
            proc = subprocess.run([ptxas, "-arch=sm_90", "-c", "-v", str(src), "-o", str(Path(tmp) / f"{name}.cubin")],
                                  capture_output=True, text=True)
            text = proc.stdout + proc.stderr
            found = re.search(r"Used (\d+) registers", text)
            if proc.returncode != 0 or found is None:
                raise RuntimeError(f"ptxas failed on {name}: {text[-2000:]}")
            regs = int(found.group(1))
            smem = re.search(r"(\d+) bytes smem", text)
            spill = re.search(r"(\d+) bytes spill stores", text)
            blocks, threads = launch[name]
            static = int(smem.group(1)) if smem else 0
            if static == 0:  # relocatable ptxas does not count module-level shared arrays: take them from the PTX
                static = sum(int(n) for n in re.findall(r"\.shared \.align \d+ \.b8 \w+\[(\d+)\]", ptx))
            dynamic = spect_cuda.shared_bytes(name, nz=128, nc=128)
            entry = {"registers": regs, "shared_memory_bytes": static + dynamic, "static_shared_bytes": static,
                     "dynamic_shared_bytes_128_case": dynamic, "spill_store_bytes": int(spill.group(1)) if spill else 0,
                     "blocks_128_case": blocks, "threads_per_block": threads}
            entry.update(occupancy_sm90(regs, entry["shared_memory_bytes"], threads))
            out["kernels"][name] = entry
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=None, help="write the JSON here (default: stdout only)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    result = report()
    text = json.dumps(result, indent=2)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
        logger.info("wrote %s", args.out)
    sys.stdout.write(text + "\n")
    return 0 if "error" not in result else 1


if __name__ == "__main__":
    sys.exit(main())
