"""The checks of the GPU acceptance run (`benchmarks/studies/gpu_acceptance.py`), one generator per
group. Each yields rows `(check, status, figure)` with status PASS, FAIL or SKIP; a row
that needs a GPU is SKIP in a dry run, and what can be checked without one (nvcc
compile-only of every kernel, the scripted server, the task files) is checked instead.
A group runs in its own process under a time cap, so a hang or a wedged CUDA context
costs only its own rows.
"""
from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # run as `python benchmarks/studies/X.py`: siblings and tests/ import from the checkout
    sys.path.insert(0, str(REPO))
from benchmarks.studies.gpu_kernels import CHEATS, KERNEL_TASK, write_solutions  # noqa: E402

Row = tuple[str, str, str]
NEEDS_GPU = "needs a GPU"

# honest copies: upstream tasks across levels 1-3 with inputs and outputs under ~300 MB
COPIES = [("level1", "1_Square_matrix_multiplication_.py"), ("level1", "40_LayerNorm.py"),
          ("level1", "58_conv_transposed_3D__asymmetric_input__asymmetric_kernel.py"),
          ("level2", "12_Gemm_Multiply_LeakyReLU.py"), ("level2", "24_Conv3d_Min_Softmax.py"),
          ("level2", "30_Gemm_GroupNorm_Hardtanh.py"), ("level2", "99_Matmul_GELU_Softmax.py"),
          ("level3", "1_MLP.py"), ("level3", "9_ResNet18.py"), ("level3", "31_VisionAttention.py")]
# kopt bench: level-1/2 tasks the rules proposer has a template for (norms, elementwise tails)
BENCH = [("level1", "40_LayerNorm.py"), ("level2", "12_Gemm_Multiply_LeakyReLU.py"),
         ("level2", "30_Gemm_GroupNorm_Hardtanh.py"), ("level2", "81_Gemm_Swish_Divide_Clamp_Tanh_Clamp.py"),
         ("level2", "99_Matmul_GELU_Softmax.py")]


@dataclass
class Ctx:
    dry: bool
    kernelbench: Path
    work: Path

    def task(self, level: str, name: str) -> Path:
        return self.kernelbench / level / name

    def solutions(self) -> dict[str, Path]:
        return write_solutions(self.work / "solutions")


def eval_cfg(**kw):
    """Short timing budgets: the whole run must fit in 8 minutes on one GPU."""
    from kopt.sandboxes.evaluator import EvalConfig

    return EvalConfig(**{"device": "cuda", "trials": 2, "rounds": 5, "max_timing_s": 3.0, **kw})


def kopt_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "kopt.agent.cli.app", *args]


def dry_cli_row(label: str, out: subprocess.CompletedProcess) -> Row:
    """Without a GPU the command must get past its flags and stop at the missing CUDA (exit 3):
    a flag it no longer takes (exit 2) is a FAIL before a GPU is ever lent."""
    last = (out.stderr.strip().splitlines() or [""])[-1][:150]
    if out.returncode == 3:
        return label, "SKIP", f"{NEEDS_GPU} (flags accepted; without one: {last})"
    return label, "FAIL", f"exit {out.returncode} without a GPU (3 expected): {last}"


def short_eval_config(ctx: Ctx) -> Path:
    """A `--config` file with the short timing budgets of `eval_cfg`, for the CLI runs."""
    path = ctx.work / "short-eval.toml"
    path.write_text("[eval]\ntrials = 2\nrounds = 5\nmax_timing_s = 3.0\n")
    return path


def _figure(res: dict) -> str:
    sp = f" {res['speedup']:.2f}x" if res.get("speedup") else ""
    ci = f" CI [{res['speedup_ci'][0]:.2f}, {res['speedup_ci'][1]:.2f}]" if res.get("speedup_ci") else ""
    why = f" ({res['reason'][:80]})" if res.get("reason") else ""
    return f"{res['verdict']}{sp}{ci}{why}"


def _version(module: str) -> str | None:
    try:
        return __import__(module).__version__
    except Exception:  # noqa: BLE001 - a missing or broken package is a row, not a crash
        return None


def _gpu() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def compile_only(task: Path, solution: Path) -> Row:
    """nvcc compile-only of a solution's CUDA (no GPU needed)."""
    from kopt.sandboxes.evaluator import EvalConfig, evaluate

    res = evaluate(task, solution, EvalConfig(device="cuda", compile_only=True))
    ok = res["verdict"] == "unverified" and res["compiled"]
    return (f"nvcc compile-only: {solution.stem}", "PASS" if ok else "FAIL",
            f"{res['verdict']} in {res['checks'].get('eval_s', 0):.1f} s" + ("" if ok else f": {res.get('reason')}"))


# -- groups -------------------------------------------------------------------------------------

def environment(ctx: Ctx) -> Iterator[Row]:
    import torch

    cuda = torch.version.cuda or "none (CPU build)"
    driver = "-"
    if shutil.which("nvidia-smi"):
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30)
        driver = out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else "-"
    yield "torch / CUDA / driver", "PASS", f"torch {torch.__version__}, CUDA {cuda}, driver {driver}, " \
                                           f"Python {platform.python_version()}"
    if _gpu():
        p = torch.cuda.get_device_properties(0)
        yield "GPU", "PASS", f"{p.name}, {p.total_memory / 2**30:.0f} GiB, sm_{p.major}{p.minor}, " \
                             f"L2 {p.L2_cache_size / 2**20:.0f} MiB, {torch.cuda.device_count()} visible"
    else:
        yield "GPU", "SKIP" if ctx.dry else "FAIL", "no GPU visible to torch"
    from kopt.sandboxes.cuda_compile import find_nvcc, nvcc_version

    nvcc = find_nvcc()
    yield "nvcc", "PASS" if nvcc else "FAIL", nvcc_version(nvcc) if nvcc else "not found (KOPT_NVCC or CUDA_HOME)"
    for name, module in (("Triton", "triton"), ("CuPy", "cupy")):
        v = _version(module)
        yield name, "PASS" if v else ("SKIP" if ctx.dry else "FAIL"), v or "not installed (pip install -e '.[gpu]')"
    out = subprocess.run(kopt_cmd("doctor", "--json"), capture_output=True, text=True, timeout=120)
    try:
        info = json.loads(out.stdout)
        yield "kopt doctor", "PASS" if out.returncode == 0 else "FAIL", \
            f"sandbox: {info.get('sandbox')}; docker: {info.get('docker engine')}; cuda: {info.get('cuda')}"
    except json.JSONDecodeError:
        yield "kopt doctor", "FAIL", f"exit {out.returncode}: {(out.stderr or out.stdout).strip()[-120:]}"


def gpu_tests(ctx: Ctx) -> Iterator[Row]:
    tests = Path(__file__).resolve().parents[2] / "tests"
    if ctx.dry:
        yield "pytest -m gpu", "SKIP", NEEDS_GPU
        return
    if not tests.is_dir():
        yield "pytest -m gpu", "SKIP", f"no tests/ next to this kopt ({tests}): run from a clone"
        return
    out = subprocess.run([sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", str(tests)],
                         capture_output=True, text=True, cwd=tests.parent)
    lines = [ln for ln in out.stdout.strip().splitlines() if ln.strip()]
    summary = lines[-1].strip("= ") if lines else "(no output)"
    ok = out.returncode == 0 and "passed" in summary and "skipped" not in summary
    yield "pytest -m gpu", "PASS" if ok else "FAIL", summary


def copies(ctx: Ctx) -> Iterator[Row]:
    from kopt.sandboxes.evaluator import evaluate
    from kopt.sandboxes.kernelbench_tasks import load_task, reference_solution

    folder = ctx.work / "copies"
    folder.mkdir(parents=True, exist_ok=True)
    for level, name in COPIES:
        label = f"copy {level}/{name.split('_')[0]} {name[:-3].split('_', 1)[1]}"
        task = ctx.task(level, name)
        if not task.exists():
            yield label, "FAIL", f"missing upstream task {task}"
            continue
        sol = folder / f"{level}_{name}"
        sol.write_text(reference_solution(load_task(task).source))
        if ctx.dry:
            yield label, "SKIP", f"{NEEDS_GPU} (task read, copy written)"
            continue
        res = evaluate(task, sol, eval_cfg())
        yield label, "PASS" if res["correct"] and res["verdict"] == "same" else "FAIL", _figure(res)


def kernels(ctx: Ctx) -> Iterator[Row]:
    from kopt.sandboxes.evaluator import evaluate

    sols = ctx.solutions()
    task = ctx.task(*KERNEL_TASK)
    if ctx.dry:
        from kopt.sandboxes.cuda_compile import find_nvcc

        for name in ("cuda", "cupy", "cupy_wrong"):
            yield compile_only(task, sols[name]) if find_nvcc() else (f"nvcc compile-only: {name}", "SKIP", "no nvcc")
        from kopt.sandboxes.triton_check import check_triton

        problems = check_triton(sols["triton"].read_text())
        yield "Triton source check: triton", "FAIL" if problems else "PASS", "; ".join(problems) or "clean"
        for label in ("fused CUDA (load_inline)", "fused CuPy RawKernel", "fused Triton"):
            yield f"{label} on level2/16", "SKIP", NEEDS_GPU
        return
    for label, name, want in (("fused CUDA (load_inline)", "cuda", ("faster",)),
                              ("fused CuPy RawKernel", "cupy", ("faster", "same")),
                              ("fused Triton", "triton", ("faster", "same"))):
        res = evaluate(task, sols[name], eval_cfg())
        ok = res["correct"] and res["verdict"] in want and res["kernel"] == name
        yield f"{label} on level2/16", "PASS" if ok else "FAIL", _figure(res)


def cheats(ctx: Ctx) -> Iterator[Row]:
    from kopt.sandboxes.evaluator import evaluate

    sols = ctx.solutions()
    for i, (name, (_, caught_by)) in enumerate(CHEATS.items()):
        if ctx.dry:
            compile(sols[f"cheat_{i}"].read_text(), name, "exec")
            yield f"cheat: {name}", "SKIP", f"{NEEDS_GPU} (written; caught if {' or '.join(caught_by)})"
            continue
        res = evaluate(sols["cheat_task"], sols[f"cheat_{i}"], eval_cfg())
        caught = res["verdict"] in caught_by
        yield f"cheat: {name}", "PASS" if caught else "FAIL", ("caught: " if caught else "NOT caught: ") + _figure(res)


def timing(ctx: Ctx) -> Iterator[Row]:
    from kopt.sandboxes.evaluator import build_cache_dir, evaluate
    from kopt.sandboxes.kernelbench_tasks import reference_solution

    sols = ctx.solutions()
    if ctx.dry:
        for check in ("copy's CI width", "events vs wall clock", "compile cache (no rebuild)"):
            yield f"timing: {check}", "SKIP", NEEDS_GPU
        return
    copy = ctx.work / "solutions" / "cheat_copy.py"
    copy.write_text(reference_solution(sols["cheat_task"].read_text()))
    res = evaluate(sols["cheat_task"], copy, eval_cfg(max_timing_s=5.0, rounds=9))
    lo, hi = res.get("speedup_ci") or (0.0, 99.0)
    yield "timing: copy's CI width", "PASS" if res["verdict"] == "same" and hi - lo <= 0.2 else "FAIL", \
        f"width {hi - lo:.3f}: {_figure(res)}"
    yield events_vs_wall(sols["cheat_task"])
    source = sols["cuda"].read_text()
    if not any(build_cache_dir(source).rglob("*.so")):  # the kernels group did not run before this one
        evaluate(ctx.task(*KERNEL_TASK), sols["cuda"], eval_cfg())
    built = sorted(build_cache_dir(source).rglob("*.so"))
    before = {p: p.stat().st_mtime_ns for p in built}
    t0 = time.perf_counter()
    res = evaluate(ctx.task(*KERNEL_TASK), sols["cuda"], eval_cfg())
    after = {p: p.stat().st_mtime_ns for p in sorted(build_cache_dir(source).rglob("*.so"))}
    ok = bool(before) and before == after and res["correct"]
    yield "timing: compile cache (no rebuild)", "PASS" if ok else "FAIL", \
        f"{len(before)} build(s) reused, second evaluation {time.perf_counter() - t0:.1f} s" if ok else \
        f"builds before {len(before)}, changed {sum(before.get(p) != m for p, m in after.items())}; {_figure(res)}"


def events_vs_wall(task: Path) -> Row:
    """CUDA events against the host clock on the same calls, with the harness's own timer."""
    import runpy
    import statistics

    import torch

    from kopt.sandboxes.gpu_timing import GpuTimer

    g = runpy.run_path(str(task))
    model = g["Model"](*g["get_init_inputs"]()).cuda()
    inputs = [[t.cuda() for t in g["get_inputs"]()] for _ in range(5)]
    timer = GpuTimer(torch)
    timer.run(model, inputs[:1])
    _, event_ms, wall_ms = timer.run(model, inputs)
    ratio = statistics.median(e / w for e, w in zip(event_ms, wall_ms))
    ok = 0.8 <= ratio <= 1.02
    return "timing: events vs wall clock", "PASS" if ok else "FAIL", \
        f"events {statistics.median(event_ms):.3f} ms, wall {statistics.median(wall_ms):.3f} ms ({100 * ratio:.0f}%)"


def _answers(sols: dict[str, Path]):
    """The scripted model: a plan, then per proposal a wrong kernel and a right faster one."""
    plan = "1. [none] fuse mish, add, hardtanh and scale into one CUDA kernel after the conv-transpose"
    wrong = "```python\n" + sols["cupy_wrong"].read_text() + "```"
    right = "```python\n" + sols["cuda"].read_text() + "```"
    codes = [0]

    def answer(body: dict, n: int) -> str:
        if "Plan only" in body["messages"][-1]["content"]:
            return plan
        codes[0] += 1
        return wrong if codes[0] % 2 else right

    return answer


def optimize(ctx: Ctx) -> Iterator[Row]:
    from benchmarks.studies.loopback_chat import LoopbackChat
    from kopt.agent.core import Candidate
    from kopt.agent.proposers.backends.openai_compat import OpenAIChat
    from kopt.agent.proposers.llm_proposer import LLMProposer, code_messages, plan_messages

    sols = ctx.solutions()
    task = ctx.task(*KERNEL_TASK)
    with LoopbackChat(_answers(sols)) as srv:
        if ctx.dry:
            proposer = LLMProposer(OpenAIChat("scripted", base_url=srv.url, api_key="loopback"))
            parent = Candidate(code=task.read_text(), plan_step="reference")
            context = {"task_source": task.read_text(), "parent": parent, "lessons": ""}
            assert plan_messages(context) and code_messages(context, "x")
            kids = proposer.propose(context)
            got = ["load_inline" in k.code for k in kids]
            yield "scripted server (loopback)", "PASS" if got == [False, True] else "FAIL", \
                f"{len(srv.requests)} requests; children wrong, right: {got}"
        run_dir = ctx.work / "optimize"
        cmd = kopt_cmd("optimize", str(task), "--config", str(short_eval_config(ctx)), "--device", "cuda",
                       "--model", "openai/scripted", "--base-url", srv.url, "--budget", "4", "--fit", "none",
                       "--run-dir", str(run_dir), "--json")
        out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OPENAI_API_KEY": "loopback"})
    if ctx.dry:
        yield dry_cli_row("kopt optimize --device cuda (level2/16)", out)
        return
    best = run_dir / "best" / "solution.py"
    evals = json.loads((run_dir / "best" / "evaluations.json").read_text()) if best.exists() else []
    ok = best.exists() and "load_inline" in best.read_text() and evals and all(e["correct"] for e in evals) \
        and evals[-1]["verdict"] == "faster"
    figure = _figure(evals[-1]) if evals else f"exit {out.returncode}: {out.stderr.strip()[-150:]}"
    yield "kopt optimize --device cuda (level2/16)", "PASS" if ok else "FAIL", \
        f"best {'CUDA kernel' if ok else best.exists() and 'wrong pick'}: {figure}"


def bench(ctx: Ctx) -> Iterator[Row]:
    folder = ctx.work / "bench-tasks"
    folder.mkdir(parents=True, exist_ok=True)
    for i, (level, name) in enumerate(BENCH, 1):  # numbered 1..5 as a suite folder wants
        shutil.copyfile(ctx.task(level, name), folder / f"{i}_{level}_{name.split('_', 1)[1]}")
    if ctx.dry:
        yield from rules_kernels(ctx, sorted(folder.glob("*.py")))
    out = subprocess.run(kopt_cmd("bench", str(folder), "--config", str(short_eval_config(ctx)),
                                  "--device", "cuda", "--budget", "1", "--fit", "none",
                                  "--baselines", "eager,compile", "--compile-timeout", "30", "--json",
                                  "--run-dir", str(ctx.work / "bench")), capture_output=True, text=True)
    if ctx.dry:
        yield dry_cli_row("kopt bench --device cuda (5 tasks, one-shot)", out)
        return
    try:
        m = json.loads(out.stdout)["metrics"]["all"]
    except (json.JSONDecodeError, KeyError):
        yield "kopt bench --device cuda (5 tasks, one-shot)", "FAIL", \
            f"exit {out.returncode}: {out.stderr.strip()[-150:]}"
        return
    fast = ", ".join(f"fast_{p} {100 * v:.0f}%" for p, v in m["fast_p"].items())
    geo = f"{m['geomean_speedup']:.2f}x" if m.get("geomean_speedup") else "-"
    yield "kopt bench --device cuda (5 tasks, one-shot)", "PASS" if m["scored"] == len(BENCH) else "FAIL", \
        f"scored {m['scored']}, correct {100 * m['correct_rate']:.0f}%, {fast}, geomean {geo}"


def rules_kernels(ctx: Ctx, tasks: list[Path]) -> Iterator[Row]:
    """The one-shot candidate `kopt bench` would evaluate for each task (the first of the rules'
    GPU plans): its CUDA compiled with nvcc, its Triton through the source checks."""
    from kopt.agent.proposers.rules.gpu_codegen import generate
    from kopt.agent.proposers.rules.kernelbench_rules import gpu_plans
    from kopt.agent.proposers.rules.named_return import normalise
    from kopt.sandboxes.cuda_compile import find_nvcc
    from kopt.sandboxes.triton_check import check_triton

    for task in tasks:
        src = normalise(task.read_text())  # as the proposer does (activation modules read as ops)
        found = gpu_plans(src)
        label = f"rules one-shot: {task.stem}"
        if not found:
            yield label, "PASS", "no rule applies (nothing proposed)"
            continue
        _, runs, _, backend = found[0]
        sol = ctx.work / "rules" / f"{task.stem}_{backend}.py"
        sol.parent.mkdir(parents=True, exist_ok=True)
        sol.write_text(generate(src, runs, backend))
        if backend == "triton":
            problems = check_triton(sol.read_text())
            yield label, "FAIL" if problems else "PASS", "; ".join(problems) or "Triton source checks clean"
        elif find_nvcc():
            _, status, figure = compile_only(task, sol)
            yield label, status, f"CUDA {figure}"
        else:
            yield label, "SKIP", "no nvcc"


# name, cap in seconds (the whole run is designed for 8 minutes on an H100/H200), generator
GROUPS = [("environment", 60, environment), ("pytest", 100, gpu_tests), ("copies", 70, copies),
          ("kernels", 80, kernels), ("cheats", 50, cheats), ("timing", 30, timing),
          ("optimize", 45, optimize), ("bench", 90, bench)]


def one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()
