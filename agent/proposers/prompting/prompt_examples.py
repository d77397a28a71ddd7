'''One short valid solution per device, shown to the model as the pattern to follow (how to
build a kernel, call it on the tensors' memory, and keep ModelNew's interface). Each is for a
task computing torch.relu(x); tests evaluate the CPU one with the real evaluator.'''
from __future__ import annotations

CPU = '''import ctypes

import torch
import torch.nn as nn

from kopt.sandboxes.native import load_cpp

SOURCE = r"""
#include <cstdint>
extern "C" void relu(const float* x, float* y, int64_t n) {
    #pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}
"""
_lib = load_cpp(SOURCE)
_lib.relu.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        x = x.contiguous()
        y = torch.empty_like(x)
        _lib.relu(x.data_ptr(), y.data_ptr(), x.numel())
        return y
'''

CUDA = '''import torch
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

CUDA_SRC = r"""
#include <torch/extension.h>
__global__ void relu_kernel(const float* __restrict__ x, float* __restrict__ y, int64_t n) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}
torch::Tensor relu(torch::Tensor x) {
    auto xc = x.contiguous();
    auto y = torch::empty_like(xc);
    int64_t n = xc.numel();
    relu_kernel<<<(n + 255) / 256, 256>>>(xc.data_ptr<float>(), y.data_ptr<float>(), n);
    return y;
}
"""
_ext = load_inline(name="kopt_example_relu", cpp_sources="torch::Tensor relu(torch::Tensor x);",
                   cuda_sources=CUDA_SRC, functions=["relu"], verbose=False)


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return _ext.relu(x)
'''

EXAMPLES = {"cpu": CPU, "cuda": CUDA}
