"""Hot loops only: projectors, rotations, blurs; Numba CPU and CUDA targets behind one function each."""
