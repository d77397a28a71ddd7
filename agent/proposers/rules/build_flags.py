"""Compiler flags of the C++ the rules generate (shared by every rule that writes C++)."""
from __future__ import annotations

BASE_FLAGS = ("-O3", "-march=native", "-fopenmp", "-shared", "-fPIC", "-std=c++17", "-fno-math-errno")
# Without -ffast-math GCC keeps libm calls (expf, log1pf) scalar -- with them the fused
# loop once measured ~8x *slower* than eager PyTorch -- and does not vectorise the float
# reductions of the norm kernels, so only the vectorised variant is proposed (exp, tanh,
# erf and mish are inline in `cpu_math` and vectorise either way).
FLAGS = BASE_FLAGS + ("-ffast-math",)
FLAG_NAME = "vectorised math (-ffast-math: SIMD exp/erf/tanh)"
