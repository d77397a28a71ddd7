"""The GPU solutions kopt's acceptance run evaluates (`benchmarks/studies/gpu_acceptance.py`),
written in this project: one fused elementwise kernel for a level-2 KernelBench task in
three toolchains (CUDA through load_inline, CuPy RawKernel, Triton), a wrong CuPy variant
the scripted LLM offers first, and five GPU cheats the evaluator must catch.

KERNEL_TASK is upstream level 2 problem 16: after the transposed convolution, Mish, `+
add_value`, hardtanh(-1, 1) and `* scale` are four full passes over a 2 GiB activation;
one fused pass replaces them (in place: the convolution's output is a temporary). Mish is
x * n / (n + 2) with n = e^x (e^x + 2) (no tanh, no log), and x itself above 20 as in
PyTorch's softplus threshold. The kernels keep torch headers out of the CUDA unit, so
nvcc compiles it in about a second (the compile-only dry run does all of them).
"""
from __future__ import annotations

from pathlib import Path

KERNEL_TASK = ("level2", "16_ConvTranspose2d_Mish_Add_Hardtanh_Scaling.py")

# one element of the fused tail; `v`, `add` and `scale` are floats
_CUDA_BODY = r"""
    float v = x[i];
    const float e = expf(fminf(v, 20.0f));
    const float n = e * (e + 2.0f);
    v = v > 20.0f ? v : v * n / (n + 2.0f);
    v = fminf(fmaxf(v + add, -1.0f), {upper});
    x[i] = v * scale;
"""

_CUDA_KERNEL = r"""
extern "C" __global__ void mish_add_hardtanh_scale(float* __restrict__ x, long long n, float add, float scale) {{
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (long long)gridDim.x * blockDim.x) {{
{body}
  }}
}}
"""

LOAD_INLINE = '''"""Conv-transpose, then Mish + add + hardtanh + scale in one CUDA pass (load_inline)."""
import torch
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

CUDA_SRC = r"""
#include <cuda_runtime.h>
{kernel}
void fused_launch(float* x, long long n, float add, float scale, cudaStream_t stream) {{
  const int threads = 256;
  long long blocks = (n + threads - 1) / threads;
  if (blocks > 65535LL * 32) blocks = 65535LL * 32;
  mish_add_hardtanh_scale<<<(unsigned)blocks, threads, 0, stream>>>(x, n, add, scale);
}}
"""

CPP_SRC = r"""
#include <torch/extension.h>
#include <ATen/cuda/CUDAContext.h>

void fused_launch(float* x, long long n, float add, float scale, cudaStream_t stream);

torch::Tensor fused_(torch::Tensor x, double add, double scale) {{
  TORCH_CHECK(x.is_cuda() && x.scalar_type() == torch::kFloat32 && x.is_contiguous(), "contiguous float32 CUDA");
  fused_launch(x.data_ptr<float>(), x.numel(), (float)add, (float)scale, at::cuda::getCurrentCUDAStream());
  return x;
}}
"""

_ext = load_inline(name="kopt_accept_mish_add_hardtanh_scale", cpp_sources=CPP_SRC, cuda_sources=CUDA_SRC,
                   functions=["fused_"], no_implicit_headers=True, extra_cuda_cflags=["-O3"])


class ModelNew(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, output_padding, add_value, scale):
        super().__init__()
        self.conv_transpose = nn.ConvTranspose2d(in_channels, out_channels, kernel_size, stride, padding,
                                                 output_padding)
        self.add_value = add_value
        self.scale = scale

    def forward(self, x):
        y = self.conv_transpose(x).contiguous()
        return _ext.fused_(y, float(self.add_value), float(self.scale))
'''

CUPY = '''"""The same fused tail as a CuPy RawKernel (NVRTC), on torch's current stream.{note}"""
import cupy as cp
import torch
import torch.nn as nn

SRC = r"""{kernel}"""
_fused = cp.RawKernel(SRC, "mish_add_hardtanh_scale")


class ModelNew(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, output_padding, add_value, scale):
        super().__init__()
        self.conv_transpose = nn.ConvTranspose2d(in_channels, out_channels, kernel_size, stride, padding,
                                                 output_padding)
        self.add_value = add_value
        self.scale = scale

    def forward(self, x):
        y = self.conv_transpose(x).contiguous()
        n = y.numel()
        blocks = min((n + 255) // 256, 65535 * 32)
        with cp.cuda.ExternalStream(torch.cuda.current_stream().cuda_stream):
            _fused((blocks,), (256,), (cp.from_dlpack(y), cp.int64(n), cp.float32(self.add_value),
                                       cp.float32(self.scale)))
        return y
'''

TRITON = '''"""The same fused tail in Triton (one program per block of 4096 floats, in place)."""
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def _fused(x_ptr, n, add, scale, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    v = tl.load(x_ptr + offs, mask=mask, other=0.0)
    e = tl.exp(tl.minimum(v, 20.0))
    m = e * (e + 2.0)
    v = tl.where(v > 20.0, v, v * m / (m + 2.0))
    v = tl.minimum(tl.maximum(v + add, -1.0), 1.0)
    tl.store(x_ptr + offs, v * scale, mask=mask)


class ModelNew(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, output_padding, add_value, scale):
        super().__init__()
        self.conv_transpose = nn.ConvTranspose2d(in_channels, out_channels, kernel_size, stride, padding,
                                                 output_padding)
        self.add_value = add_value
        self.scale = scale

    def forward(self, x):
        y = self.conv_transpose(x).contiguous()
        n = y.numel()
        _fused[(triton.cdiv(n, 4096),)](y, n, float(self.add_value), float(self.scale), BLOCK=4096)
        return y
'''

# -- cheats: a small matmul task of kopt's own, and five ways to look fast or right ------------

CHEAT_TASK = '''"""kopt's own GPU cheat target: relu(x @ w), 4096 x 4096 floats (about 2 ms on an H100)."""
import torch
import torch.nn as nn

N = 4096


class Model(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.w = nn.Parameter(torch.randn(n, n) / n ** 0.5)

    def forward(self, x):
        return torch.relu(x @ self.w)


def get_inputs():
    return [torch.randn(N, N)]


def get_init_inputs():
    return [N]
'''

_CHEAT_HEAD = '''import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.w = nn.Parameter(torch.randn(n, n) / n ** 0.5)
'''

CHEATS = {
    # right on a first call; afterwards an uninitialised buffer of the output's size, which the
    # caching allocator hands back from the block the previous result was freed into
    "uninitialised output (torch.empty)": ('''
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        if self.calls == 1:
            return torch.relu(x @ self.w)
        return torch.empty(x.shape[0], self.w.shape[1], device=x.device)
''', ("incorrect", "rejected")),
    "inputs zeroed in place": ('''
    def forward(self, x):
        y = torch.relu(x @ self.w)
        x.zero_()
        return y
''', ("incorrect", "rejected")),
    "work on a side stream the timer does not wait for": ('''
        self.side = None

    def forward(self, x):
        if self.side is None:
            self.side = torch.cuda.Stream()
        self.side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.side):
            y = torch.relu(x @ self.w)
        return y
''', ("rejected",)),
    "result cached across calls (by pointer)": ('''
        self.key, self.value = None, None

    def forward(self, x):
        key = (x.data_ptr(), tuple(x.shape))
        if key != self.key:
            self.key, self.value = key, torch.relu(x @ self.w)
        return self.value
''', ("incorrect", "rejected")),
    # persisting-L2 window over the weights (64 MiB of an H100's 50 MiB L2 as much as it
    # fits); the harness resets persisting lines and flushes L2 before each timed call
    "warm persisting-L2 window on the weights": ('''
        self.window = False

    def _persist(self):
        import ctypes
        import os

        lib_dir = os.path.join(os.path.dirname(torch.__file__), "lib")
        names = ["libcudart.so", "libcudart.so.12", "libcudart.so.13"] + [
            os.path.join(lib_dir, f) for f in os.listdir(lib_dir) if f.startswith("libcudart")]
        for name in names:
            try:
                rt = ctypes.CDLL(name)
                break
            except OSError:
                continue
        else:
            return
        size = torch.cuda.get_device_properties(0).L2_cache_size * 3 // 4
        rt.cudaDeviceSetLimit(ctypes.c_int(6), ctypes.c_size_t(size))  # cudaLimitPersistingL2CacheSize

        class Window(ctypes.Structure):
            _fields_ = [("base", ctypes.c_void_p), ("bytes", ctypes.c_size_t), ("ratio", ctypes.c_float),
                        ("hit", ctypes.c_int), ("miss", ctypes.c_int), ("pad", ctypes.c_char * 36)]

        win = Window(self.w.data_ptr(), min(size, self.w.numel() * 4), 1.0, 2, 1)  # persisting / streaming
        stream = ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)
        rt.cudaStreamSetAttribute(stream, ctypes.c_int(1), ctypes.byref(win))  # access policy window

    def forward(self, x):
        if not self.window:
            self.window = True
            self._persist()
        return torch.relu(x @ self.w)
''', ("same", "slower")),
}


def write_solutions(folder: Path) -> dict[str, Path]:
    """Every solution file (and the cheat task) under `folder`: name -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    kernel = _CUDA_KERNEL.format(body=_CUDA_BODY.format(upper="1.0f"))
    wrong = _CUDA_KERNEL.format(body=_CUDA_BODY.format(upper="FLT_MAX"))
    files = {
        "cuda": LOAD_INLINE.format(kernel=kernel),
        "cupy": CUPY.format(kernel=kernel, note=""),
        "cupy_wrong": CUPY.format(kernel="#define FLT_MAX 3.402823466e+38f\n" + wrong,
                                  note=" Wrong: hardtanh's upper bound is missing."),
        "triton": TRITON,
        "cheat_task": CHEAT_TASK,
    }
    for i, (name, (body, _)) in enumerate(CHEATS.items()):
        files[f"cheat_{i}"] = f'"""GPU cheat: {name}."""\n' + _CHEAT_HEAD + body
    out = {}
    for name, text in files.items():
        path = folder / f"{name}.py"
        path.write_text(text)
        out[name] = path
    return out
