"""The inline float math of the generated kernels (`kopt.agent.proposers.rules.cpu_math`) is accurate over
the whole float range the kernels meet, with and without -ffast-math."""
from __future__ import annotations

import ctypes

import pytest

torch = pytest.importorskip("torch")

from kopt.agent.proposers.rules.cpu_math import PRELUDE  # noqa: E402
from kopt.agent.proposers.rules.kernelbench_rules import BASE_FLAGS, FLAGS  # noqa: E402
from kopt.sandboxes.native import load_cpp  # noqa: E402

SOURCE = PRELUDE + "".join(f"""
extern "C" void apply_{f}(const float* in, float* out, int64_t n) {{
  #pragma omp simd
  for (int64_t i = 0; i < n; ++i) out[i] = {f}(in[i]);
}}
""" for f in ("kexp", "ktanh", "kerf", "kmish"))


@pytest.fixture(params=[FLAGS, BASE_FLAGS], ids=["fast-math", "strict"])
def lib(request, tmp_path_factory, monkeypatch):
    monkeypatch.setenv("KOPT_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "kopt-cache"))
    return load_cpp(SOURCE, request.param)


def apply(lib, name: str, x):
    x = x.contiguous()
    out = torch.empty_like(x)
    getattr(lib, f"apply_{name}")(ctypes.c_void_p(x.data_ptr()), ctypes.c_void_p(out.data_ptr()),
                                  ctypes.c_int64(x.numel()))
    return out


def grid(lo: float, hi: float):
    dense = torch.linspace(lo, hi, 200_001, dtype=torch.float32)
    tiny = torch.tensor([0.0, -0.0, 1e-30, -1e-30, 1e-8, -1e-8, 1e-4, -1e-4])
    return torch.cat([dense, tiny])


def test_exp_relative_error(lib):
    x = grid(-87.0, 88.0)
    torch.testing.assert_close(apply(lib, "kexp", x), torch.exp(x.double()).float(), rtol=2e-6, atol=0)


def test_exp_saturates_instead_of_overflowing(lib):
    x = torch.tensor([-1e4, -200.0, -88.0, 89.0, 200.0, 1e4])
    y = apply(lib, "kexp", x)
    assert torch.isfinite(y).all() and (y[:3] < 1e-37).all() and (y[3:] > 1e38).all()


def test_tanh_relative_error(lib):
    x = grid(-60.0, 60.0)
    torch.testing.assert_close(apply(lib, "ktanh", x), torch.tanh(x.double()).float(), rtol=1e-6, atol=0)


def test_erf_absolute_error(lib):
    x = grid(-60.0, 60.0)
    got, want = apply(lib, "kerf", x), torch.erf(x.double()).float()
    assert (got - want).abs().max().item() < 5e-7
    assert torch.equal(torch.sign(got), torch.sign(want))


def test_mish_matches_torch(lib):
    x = grid(-100.0, 100.0)
    want = torch.nn.functional.mish(x.double()).float()
    torch.testing.assert_close(apply(lib, "kmish", x), want, rtol=2e-6, atol=1e-7)
