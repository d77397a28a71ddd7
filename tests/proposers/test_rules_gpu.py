"""The `rules` proposer's GPU templates, checked without a GPU.

For `--device cuda` the rules write the norm-with-neighbours plan in Triton and the
elementwise plan as CUDA through load_inline. Triton kernels really run on the CPU under
TRITON_INTERPRET=1, so their correctness is checked here (by the evaluator, and op by op
against PyTorch); the CUDA ones are compiled with nvcc (`--compile-only`).
"""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("triton")

from kopt.agent.core import Candidate  # noqa: E402
from kopt.agent.proposers.rules.forward_analysis import TRITON_UNARY, UNARY  # noqa: E402
from kopt.agent.proposers.rules.gpu_codegen import generate, supports  # noqa: E402
from kopt.agent.proposers.rules.kernelbench_rules import RulesProposer, gpu_plans, name_returned_value  # noqa: E402
from kopt.sandboxes.cuda_compile import find_nvcc  # noqa: E402
from kopt.sandboxes.evaluator import EvalConfig, evaluate  # noqa: E402
from kopt.sandboxes.static_scan import scan  # noqa: E402

TASK = '''import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, channels, groups, scale):
        super().__init__()
        self.conv = nn.Conv2d(3, channels, 3)
        self.norm = {norm}
        self.bias = nn.Parameter(torch.randn(channels, 1, 1))
        self.scale = scale

    def forward(self, x):
        x = self.conv(x)
        x = torch.relu(x)
        x = self.norm(x)
        x = x * self.scale + self.bias
        x = torch.nn.functional.gelu(x)
        return x


def get_inputs():
    return [torch.randn(2, 3, 7, 9)]


def get_init_inputs():
    return [8, 4, 0.5]
'''
NORMS = {"group_norm": "nn.GroupNorm(groups, channels)", "instance_norm": "nn.InstanceNorm2d(channels, affine=True)",
         "layer_norm": "nn.LayerNorm([channels, 5, 7])"}
SOFTMAX = '''import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        x = x * 2.0
        x = torch.{fn}(x, dim=-1)
        x = torch.tanh(x) - 0.25
        return x


def get_inputs():
    return [torch.randn(6, 37)]


def get_init_inputs():
    return []
'''
# elementwise chains covering every op the templates know, on values each op is defined for
CHAINS = [
    ["torch.sigmoid(x)", "torch.tanh(x)", "F.gelu(x)", "F.silu(x)", "F.mish(x)", "F.softplus(x)",
     "F.elu(x, 0.7)", "F.selu(x)", "F.leaky_relu(x, 0.2)", "F.hardtanh(x, -0.5, 0.5)"],
    ["F.hardswish(x)", "F.hardsigmoid(x)", "F.softsign(x)", "F.tanhshrink(x)", "F.logsigmoid(x)",
     "F.relu6(x)", "F.gelu(x, approximate='tanh')", "torch.clamp(x, min=-0.3)", "x ** 2", "torch.erf(x)",
     "torch.relu(x - 0.1)"],
    ["torch.abs(x) + 0.5", "torch.log(x)", "torch.exp(x)", "torch.sqrt(x)", "torch.rsqrt(x)", "torch.sin(x)",
     "torch.cos(x)", "-x", "torch.neg(x)", "torch.square(x)", "x / self.scale - self.bias"],
]
CHAIN_TASK = '''import torch
import torch.nn as nn
import torch.nn.functional as F


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = 1.5
        self.bias = nn.Parameter(torch.randn(5, 1))

    def forward(self, x):
        x = x + 0.0
{body}
        return x


def get_inputs():
    return [torch.randn(3, 5, 11) * 3]


def get_init_inputs():
    return []
'''
needs_nvcc = pytest.mark.skipif(find_nvcc() is None, reason="needs nvcc (the CUDA toolkit)")


def cfg(**kw) -> EvalConfig:
    return EvalConfig(**{"trials": 2, "quality_seeds": 2, "max_timing_s": 2, "rounds": 3, **kw})


def write_solution(tmp_path: Path, task_src: str, backend: str) -> tuple[Path, Path]:
    task = tmp_path / "task.py"
    task.write_text(task_src)
    plan = next(p for p in gpu_plans(task_src) if p[3] == backend)
    sol = tmp_path / f"solution_{backend}.py"
    sol.write_text(generate(name_returned_value(task_src), plan[1], backend))
    return task, sol


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KOPT_CACHE_DIR", str(tmp_path / "cache"))


@pytest.mark.parametrize("norm", ["group_norm", "layer_norm"])
def test_triton_norm_with_neighbours_is_correct_under_the_interpreter(tmp_path, norm):
    task, sol = write_solution(tmp_path, TASK.format(norm=NORMS[norm]), "triton")
    res = evaluate(task, sol, cfg())
    assert res["kernel"] == "triton" and res["correct"] is True, res
    assert res["verdict"] == "unverified" and "TRITON_INTERPRET" in res["reason"]


COMPARE = """
import runpy, sys, torch
t, s = runpy.run_path(sys.argv[1]), runpy.run_path(sys.argv[2])
torch.manual_seed(0)
ref = t["Model"](*t["get_init_inputs"]())
torch.manual_seed(0)
new = s["ModelNew"](*t["get_init_inputs"]())
g = s["ModelNew"].forward.__globals__
fallbacks = []
if "_run_norm" in g:  # a norm call the kernels do not take runs the task's own statements: count those
    run_norm = g["_run_norm"]
    g["_run_norm"] = lambda *a, **k: (lambda y: fallbacks.append(y is None) or y)(run_norm(*a, **k))
x = t["get_inputs"]()
with torch.no_grad():
    err = float((ref(*[v.clone() for v in x]) - new(*[v.clone() for v in x])).abs().max())
assert not any(fallbacks), "the kernel fell back to the task's statements"
print(err)
"""


def max_error(task: Path, sol: Path) -> float:
    """Reference against solution on the same inputs, in a fresh process with Triton's
    interpreter on (it is read when triton is first imported)."""
    out = subprocess.run([sys.executable, "-c", COMPARE, str(task), str(sol)], capture_output=True, text=True,
                         env={**os.environ, "TRITON_INTERPRET": "1"}, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    return float(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("norm", ["instance_norm"])
def test_triton_instance_norm_matches_pytorch(tmp_path, norm):
    task, sol = write_solution(tmp_path, TASK.format(norm=NORMS[norm]), "triton")
    assert max_error(task, sol) < 1e-4


@pytest.mark.parametrize("fn", ["softmax", "log_softmax"])
def test_triton_softmax_with_neighbours_matches_pytorch(tmp_path, fn):
    task, sol = write_solution(tmp_path, SOFTMAX.format(fn=fn), "triton")
    assert "_run_norm(norm_0, " + repr(fn) in sol.read_text()
    assert max_error(task, sol) < 1e-4


@pytest.mark.parametrize("chain", range(len(CHAINS)))
def test_every_elementwise_op_has_a_correct_triton_form(tmp_path, chain):
    body = "\n".join(f"        x = {op}" for op in CHAINS[chain])
    src = CHAIN_TASK.format(body=body)
    runs = next(runs for _, runs, _, backend in gpu_plans(src) if backend == "cuda")
    assert len(runs) == 1 and runs[0].stop - runs[0].start == len(CHAINS[chain]) + 1  # the whole chain fuses
    task = tmp_path / "task.py"
    task.write_text(src)
    sol = tmp_path / "solution.py"
    sol.write_text(generate(src, runs, "triton"))
    assert max_error(task, sol) < 1e-4


def test_the_chains_cover_every_op_the_templates_know():
    ops = set()
    for chain in CHAINS:
        src = CHAIN_TASK.format(body="\n".join(f"        x = {op}" for op in chain))
        ops |= {op for _, runs, _, _ in gpu_plans(src) for r in runs for op in r.ops}
    assert set(UNARY) == set(TRITON_UNARY) and set(UNARY) <= ops, sorted(set(UNARY) - ops)


@needs_nvcc
def test_cuda_elementwise_template_compiles_with_nvcc(tmp_path):
    body = "\n".join(f"        x = {op}" for op in CHAINS[0] + CHAINS[1] + CHAINS[2][-1:])
    task, sol = tmp_path / "task.py", tmp_path / "solution.py"
    task.write_text(CHAIN_TASK.format(body=body))
    runs = next(r for _, r, _, backend in gpu_plans(task.read_text()) if backend == "cuda")
    sol.write_text(generate(task.read_text(), runs, "cuda"))
    res = evaluate(task, sol, cfg(device="cuda", compile_only=True))
    assert res["kernel"] == "cuda" and res["compiled"] is True and res["verdict"] == "unverified", res
    assert "compiled with nvcc" in res["reason"]


def test_rules_choose_gpu_templates_for_device_cuda(tmp_path):
    from kopt.agent.targets.kernelbench.kernelbench_target import KernelBenchTarget

    src = TASK.format(norm=NORMS["group_norm"])
    (tmp_path / "task.py").write_text(src)
    target = KernelBenchTarget.from_path(tmp_path / "task.py", EvalConfig(device="cuda"))  # as a search has it
    parent = Candidate(code=src, plan_step="reference")
    gpu = RulesProposer().propose({"task_source": src, "parent": parent, "target": target})
    assert [scan(c.code).kernel for c in gpu] == ["triton", "cuda"], [c.plan_step for c in gpu]
    assert "Triton" in gpu[0].plan_step and "load_inline" in gpu[1].plan_step
    cpu = RulesProposer().propose({"task_source": src, "parent": parent,
                                   "target": SimpleNamespace(eval_cfg=EvalConfig())})
    assert cpu and all(scan(c.code).kernel == "cpp" for c in cpu)


def test_cuda_backend_does_not_take_norms():
    src = name_returned_value(TASK.format(norm=NORMS["layer_norm"]))
    from kopt.agent.proposers.rules.kernelbench_rules import plans

    norm_plan = plans(src)[0][1]
    assert not supports(src, norm_plan, "cuda") and supports(src, norm_plan, "triton")
    with pytest.raises(ValueError):
        generate(src, norm_plan, "cuda")


# -- on a GPU: the same templates, evaluated and timed for real -------------------------------

@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_rules_gpu_candidates_are_correct_on_the_gpu(tmp_path):
    src = TASK.format(norm=NORMS["group_norm"]).replace("torch.randn(2, 3, 7, 9)", "torch.randn(64, 3, 66, 66)")
    task = tmp_path / "task.py"
    task.write_text(src)
    target = SimpleNamespace(eval_cfg=EvalConfig(device="cuda"))
    kids = RulesProposer().propose({"task_source": src, "parent": Candidate(code=src), "target": target})
    for i, kid in enumerate(kids):
        sol = tmp_path / f"kid{i}.py"
        sol.write_text(kid.code)
        res = evaluate(task, sol, EvalConfig(device="cuda", max_timing_s=5, rounds=7))
        assert res["correct"] is True and res["kernel"] in ("triton", "cuda"), res
        assert res["verdict"] in ("faster", "same", "slower"), res


def test_a_returned_module_call_is_read_as_a_statement():
    """`return self.ln(x)` (KernelBench level 1's norms) is `x = self.ln(x); return x`, not `self = ...`."""
    src = TASK.format(norm=NORMS["layer_norm"]).replace(
        "        x = self.conv(x)\n        x = torch.relu(x)\n        x = self.norm(x)\n"
        "        x = x * self.scale + self.bias\n        x = torch.nn.functional.gelu(x)\n        return x",
        "        return self.norm(x)")
    assert "return self.norm(x)" in src
    assert "x = self.norm(x)" in name_returned_value(src)
    assert [backend for *_, backend in gpu_plans(src)] == ["triton"]


UPSTREAM_83 = Path("/work/shared/kernelbench/level2/83_Conv3d_GroupNorm_Min_Clamp_Dropout.py")
needs_upstream_83 = pytest.mark.skipif(not UPSTREAM_83.exists(),
                                       reason="needs the upstream KernelBench checkout at /work/shared/kernelbench")


@needs_upstream_83
@pytest.mark.parametrize("device", ["cuda", "cpu"])
def test_every_candidate_keeps_the_module_level_values_its_forward_reads(device):
    """Upstream level2/83's forward reads the globals `min_value`/`max_value`: every
    candidate (the GPU templates and the CPU fusion templates too) must define them, and
    the NameError check must see that a parameter of `__init__` is no binding in `forward`."""
    from kopt.agent.proposers.rules.carry_over import undefined_names

    src = UPSTREAM_83.read_text()
    kids = RulesProposer().propose({"task_source": src, "parent": Candidate(code=src),
                                    "target": SimpleNamespace(eval_cfg=EvalConfig(device=device))})
    assert kids, "no candidate for level2/83"
    for kid in kids:
        assert not undefined_names(kid.code), (kid.plan_step, undefined_names(kid.code))
        values = {n.targets[0].id: ast.literal_eval(n.value) for n in ast.parse(kid.code).body
                  if isinstance(n, ast.Assign) and isinstance(n.targets[0], ast.Name)
                  and n.targets[0].id in ("min_value", "max_value")}
        assert values == {"min_value": 0.0, "max_value": 1.0}, kid.plan_step
    lost = src.replace("min_value = 0.0\n", "").replace("class Model(", "class ModelNew(")
    assert "min_value" in undefined_names(lost)


@needs_upstream_83
def test_level2_83_gpu_candidates_run_with_their_constants(tmp_path):
    """Each --device cuda candidate of level2/83 at a small size: the Triton ones run under
    TRITON_INTERPRET=1 on the CPU and must match the task (its forward reads `min_value`:
    a candidate without it raises NameError there), the CUDA ones must compile with nvcc."""
    src = UPSTREAM_83.read_text().replace("batch_size = 128", "batch_size = 2").replace(
        "depth, height, width = 16, 64, 64", "depth, height, width = 6, 8, 8")
    task = tmp_path / "task.py"
    task.write_text(src)
    kids = RulesProposer().propose({"task_source": src, "parent": Candidate(code=src),
                                    "target": SimpleNamespace(eval_cfg=EvalConfig(device="cuda"))})
    assert kids
    for i, kid in enumerate(kids):
        sol = tmp_path / f"kid{i}.py"
        sol.write_text(kid.code)
        kernel = scan(kid.code).kernel
        if kernel == "cuda" and find_nvcc() is None:
            continue
        res = evaluate(task, sol, cfg(device="cuda", compile_only=True) if kernel == "cuda" else cfg())
        assert res["compiled"] is True and "NameError" not in str(res.get("reason")), res
        assert kernel == "cuda" or res["correct"] is True, res
