"""`kopt eval`: one honest measurement of a KernelBench solution against its task.

Two fresh sandboxed workers per evaluation -- the reference and the candidate -- driven
in lock-step from this process. Inputs come from the reference worker (the task's own
`get_inputs`, secret seeds), travel to the candidate as bytes, and every output travels
back here to be compared. Timing is the wall clock of *this* process from each timed
request to the last byte of its outputs (inputs are put in place before, on both sides
alike), so nothing the candidate patches in its own process can change it.

The work is split by job: eval_channel (talking to one worker), eval_session (the two
workers and the configuration), eval_trials (correctness), eval_timing (timed rounds).
"""
from __future__ import annotations

import secrets
import time
from pathlib import Path

from kopt.agent.errors import EnvironmentMissing, UserInputError
from kopt.sandboxes.cuda_compile import compile_cuda, find_nvcc
from kopt.sandboxes.eval_channel import WorkerFailed, _check_outputs_blob  # noqa: F401 - re-exported
from kopt.sandboxes.eval_session import (  # noqa: F401 - re-exported: tests and callers import them here
    EvalConfig,
    SkipTrial,
    Verdict,
    _claim_cpus,
    _one_line,
    _release_cpus,
    _Session,
    _toolchain_id,
    _worker_env,
    build_cache_dir,
    solution_frames,
)
from kopt.sandboxes.eval_timing import (  # noqa: F401 - re-exported
    _check_gpu_memory,
    _check_physical_bound,
    _compile_baseline,
    _gpu_call_ms,
    _timing,
)
from kopt.sandboxes.eval_trials import (
    _correctness,
    _exchange,
    _raise_if_failed,
    _reinit_trial,
    param_pairs,
    task_quality,
)
from kopt.sandboxes.kernelbench_tasks import load_solution_source, load_task
from kopt.sandboxes.reuse import reused
from kopt.sandboxes.static_scan import ScanResult, scan
from kopt.sandboxes.timing import combine_pairs
from kopt.sandboxes.triton_check import check_triton


def _result_base(task: str, solution: str, cfg: EvalConfig, kernel: str) -> dict:
    return {"task": task, "solution": solution, "device": cfg.device, "compiled": False, "correct": False,
            "speedup": None, "speedup_ci": None, "ref_ms": None, "new_ms": None,
            "checks": {}, "verdict": None, "kernel": kernel}


def evaluate(task: str | Path, solution: str | Path, cfg: EvalConfig | None = None) -> dict:
    """Evaluate `solution` against `task`; returns the `kopt eval --json` dict (architecture §1).

    Raises UserInputError for a broken task or missing files, EnvironmentMissing when the
    device or torch is not there. Everything the solution does is a verdict.
    """
    cfg = cfg or EvalConfig()
    t = load_task(task)
    source = load_solution_source(solution)
    _check_environment(cfg)
    static, unparsable = _scanned(source)
    res = _result_base(str(task), str(solution), cfg, static.kernel)
    checks = res["checks"]
    if static.warnings:
        checks["warnings"] = static.warnings
    started = time.perf_counter()
    try:
        if unparsable:
            raise Verdict(*unparsable, compiled=False)
        if static.rejected:
            raise Verdict("rejected", static.rejected, compiled=False)
        try:
            compile(source, str(solution), "exec")
        except SyntaxError as e:
            raise Verdict("compile_error", f"syntax error line {e.lineno}: {e.msg}", compiled=False) from None
        except (RecursionError, MemoryError, ValueError) as e:
            raise Verdict("compile_error", f"Python cannot compile it: {type(e).__name__}: {str(e)[:200]}",
                          compiled=False) from None
        if static.kernel == "triton":
            _triton_precheck(source)
        gpu_here = cfg.device == "cuda" and _gpu_visible()
        if static.kernel in ("cuda", "cupy") and not gpu_here and (cfg.compile_only or cfg.nvcc_filter
                                                                   and _nvcc_installed()):
            _nvcc_compile_only(source, res, cfg.setup_timeout_s)
        if static.kernel in ("cuda", "cupy") and cfg.device == "cpu":
            raise Verdict("unverified", f"{static.kernel} kernels need a GPU: run with --device cuda on a CUDA "
                                        f"machine (--compile-only checks that it compiles)", compiled=False)
        if cfg.device == "cuda" and not gpu_here:  # --compile-only without a GPU: load it on the CPU
            cfg = cfg.model_copy(update={"device": "cpu"})
        _run(t.path, Path(solution).resolve(), source, static.kernel, cfg, res)
        if (res.get("speedup") or 0) > cfg.sanity_cap or cfg.confirm and res["verdict"] in ("faster", "slower"):
            _remeasure(t.path, Path(solution).resolve(), source, static.kernel, cfg, res)
    except Verdict as v:
        res["verdict"], res["reason"] = v.verdict, v.reason
        res["compiled"] = res["compiled"] or v.compiled and v.verdict != "compile_error"
        res["correct"] = res["correct"] and v.verdict in ("unverified",) and v.checked
    checks["eval_s"] = round(time.perf_counter() - started, 2)
    return res


def _resident_before_setup(s: _Session, cfg: EvalConfig) -> dict:
    """Each worker's resident memory once it has imported torch, before any of the task's or
    the solution's code (eval_timing.memory_veto). The pings wait out the workers' start-up,
    which is no one's time budget (a start-up counted as the reference's let a sleeping
    candidate run 500x it)."""
    try:
        for ch in (s.ref, s.new):
            ch.call({"cmd": "ping"}, b"", cfg.setup_timeout_s)
    except Exception:  # noqa: BLE001 - a worker that cannot answer fails at setup, with its verdict
        return {}
    return {"ref": s.ref.worker.resident_mb(), "new": s.new.worker.resident_mb()}


# kopt's own process reads a solution statically several times before any sandbox starts
# (scans, CUDA extraction): 1.4 MB of source took it 19 s (red team 11); real ones are < 200 kB
MAX_SOLUTION_CHARS = 1 << 20


def _scanned(source: str) -> tuple[ScanResult, tuple[str, str] | None]:
    """The static scan, or an empty one and the (verdict, reason) that ends the evaluation."""
    if len(source) > MAX_SOLUTION_CHARS:
        return ScanResult(), ("rejected", f"the solution is {len(source) / 2**20:.1f} MiB of source (at most "
                                          f"{MAX_SOLUTION_CHARS >> 20} MiB): build large tables at run time")
    try:
        return scan(source), None
    except (RecursionError, MemoryError) as e:  # a 200,000-term sum: Python's parser gives up (red team 10)
        return ScanResult(), ("compile_error", f"too deeply nested for Python's parser ({type(e).__name__}): "
                                               f"split long expressions")


def _remeasure(task: Path, sol: Path, source: str, kernel: str, cfg: EvalConfig, res: dict) -> None:
    """A `faster` or `slower` verdict (and any speedup above the sanity cap) is timed again on a
    fresh pair of workers (new processes, seeds and inputs; a share of the timed calls checked
    as before): it stands only where both pairs agree, with the speedup nearer to 1. Why: on a
    shared machine one pair of processes can be persistently favoured -- an honest copy of
    upstream level2/63 (a 256 MB weight read per call) read 1.16-1.62x faster, CPU seconds
    alike, under a memory-bandwidth load on the other core, and 0.90x in another pair."""
    first = {"speedup": res["speedup"], "speedup_ci": res["speedup_ci"], "verdict": res["verdict"]}
    again = _result_base(res["task"], res["solution"], cfg, kernel)
    try:
        _run(task, sol, source, kernel, cfg, again, timing_only=True)
    except Verdict as v:
        raise v.reworded(f"on a fresh pair of workers, timing a {first['speedup']:.2f}x speedup again: "
                         f"{v.reason}") from None
    second = {"speedup": again["speedup"], "speedup_ci": again["speedup_ci"], "verdict": again["verdict"]}
    res["checks"]["remeasured"] = {"first": first["speedup"], "second": second["speedup"],
                                   "verdicts": [first["verdict"], second["verdict"]]}
    res.update(combine_pairs(first, second))
    if res["verdict"] != first["verdict"]:
        res["checks"]["unconfirmed"] = (f"{first['verdict']} {first['speedup']:.3f}x on the first pair of workers, "
                                        f"{second['verdict']} {second['speedup']:.3f}x on a fresh pair: "
                                        f"reported `same` (geometric mean of the two)")
    if res["speedup"] > cfg.sanity_cap:
        res["checks"]["suspicious"] = f"a speedup above {cfg.sanity_cap:g}x held up in fresh processes"


def _check_environment(cfg: EvalConfig) -> None:
    """Cheap checks only: on the CPU, torch is imported here later, while the workers boot."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        raise EnvironmentMissing("PyTorch is not installed: pip install torch (CPU: torch==2.13.0)")
    if cfg.device not in ("cpu", "cuda"):
        raise UserInputError(f"unknown device {cfg.device!r}: use --device cpu or --device cuda")
    if cfg.device == "cuda":
        import torch

    if cfg.device == "cuda" and not torch.cuda.is_available() and not cfg.compile_only:
        raise EnvironmentMissing("--device cuda but no CUDA GPU is visible to PyTorch; use --device cpu")


def _gpu_visible() -> bool:
    import torch

    return torch.cuda.is_available()


def _nvcc_installed() -> bool:
    return find_nvcc() is not None


def _nvcc_compile_only(source: str, res: dict, timeout_s: float) -> None:
    """CUDA and CuPy sources compiled with nvcc where they cannot run: the compiler's
    errors become the verdict; a clean build is `unverified`, never correct."""
    report = compile_cuda(source, timeout_s=timeout_s)
    res["checks"]["nvcc"] = report.as_checks()
    if not report.ok:
        raise Verdict("compile_error", report.first_error(), compiled=False)
    if report.gaps:
        raise Verdict("unverified", "could not be compiled on this machine: " + "; ".join(report.gaps),
                      compiled=False)
    if not report.units:
        raise Verdict("unverified", "no CUDA source could be read from the solution without running it ("
                      + "; ".join(report.unresolved or ["none found"]) + ")", compiled=False)
    res["compiled"] = True
    raise Verdict("unverified", f"compiled with nvcc for {report.arch} ({len(report.units)} unit(s)); not run: "
                                f"no GPU here or --compile-only")


def _triton_precheck(source: str) -> None:
    """Errors in Triton kernels that need no GPU to find (see triton_check)."""
    problems = check_triton(source)
    if problems:
        raise Verdict("compile_error", problems[0], compiled=False)


def _run(task_path: Path, sol_path: Path, source: str, kernel: str, cfg: EvalConfig, res: dict,
         timing_only: bool = False) -> None:
    """Setup, correctness trials, timing and the task's quality flags on one pair of workers;
    `timing_only` (a second pair confirming a verdict) skips the trials and the flags."""
    t0 = time.perf_counter()
    s = _Session(task_path, source, kernel, cfg)
    s.checks = res["checks"]
    try:
        common = {"device": cfg.device, "threads": s.threads, "task": str(task_path), "cpus": sorted(s.cpus)}
        s.resident_base = _resident_before_setup(s, cfg)
        reply, init_payload = s.ref_call({"cmd": "setup", **common}, timeout=cfg.setup_timeout_s)
        constants = reply.get("constants", {})
        s.resident_base["model"] = s.ref.worker.resident_mb()  # the task's model and state on top
        new_reply, _ = s.new_call({"cmd": "setup", **common, "solution": str(sol_path), "source": s.source},
                                  init_payload, timeout=cfg.setup_timeout_s)
        _check_reuse(task_path.read_text(), source, new_reply.get("code") or [])
        phase = _Phases(s, res["checks"], t0)
        phase.end("setup")
        res["compiled"] = True
        w = s.new.worker
        res["checks"]["sandbox"] = ("jail (namespaces, read-only host, private work dir)" if w.jailed else
                                    "namespaces (no mount isolation: weaker)" if w.isolated else
                                    "rlimits only (weaker isolation)")
        protections = getattr(w, "protections", None) or {}
        off = [name for name, on in protections.items() if not on]
        if off:  # what this host could not provide, said where the verdict is read
            res["checks"]["sandbox"] += "; off here: " + ", ".join(off)
        res["checks"]["sandbox_protections"] = protections
        s.police("setup")
        if cfg.compile_only:
            raise Verdict("unverified", "compiled and loaded; not run (--compile-only)")
        if timing_only:  # one checked call, the reference's first: it sizes the cap on the candidate's replies
            _raise_if_failed(_exchange(s, [secrets.randbits(31)], "first call on a fresh pair"), res["checks"])
        else:
            _correctness(s, cfg, res, constants)
            if pairs := param_pairs(reply.get("params"), new_reply.get("params")):
                _reinit_trial(s, cfg, res, pairs)
            _check_reuse(task_path.read_text(), source, _code_after(s, "the trials"))
        phase.end("correctness")
        res["correct"] = True
        if kernel == "triton" and cfg.device == "cpu":
            task_quality(s, cfg, res)
            raise Verdict("unverified", "Triton ran under TRITON_INTERPRET=1 on the CPU: correctness checked, "
                                        "timing is not meaningful (use --device cuda)")
        gpu_before = s.new_call({"cmd": "gpu_state"})[0] if cfg.device == "cuda" else None
        _timing(s, cfg, res)
        _check_reuse(task_path.read_text(), source, _code_after(s, "the timed calls"))
        if gpu_before is not None:
            _check_gpu_memory(s, gpu_before, res["checks"])
            _compile_baseline(s, cfg, res)
        phase.end("timing")
        if not timing_only:
            task_quality(s, cfg, res)
            phase.end("quality")
    finally:
        s.close()


class _Phases:
    """Where an evaluation's time goes: `checks.phase_s` (wall seconds per phase) and
    `checks.phase_cpu_s` (CPU seconds both workers used in it, from the kernel). On a shared
    machine the wall time says how loaded it was; the CPU time says what the phase costs."""

    def __init__(self, s: _Session, checks: dict, t0: float):
        self.s, self.wall, self.cpu = s, checks.setdefault("phase_s", {}), checks.setdefault("phase_cpu_s", {})
        self.t, self.c = t0, 0.0  # the workers' CPU counts from their start (the torch import is setup's)

    def end(self, name: str) -> None:
        now, cpu = time.perf_counter(), self.s.ref.worker.cpu_seconds() + self.s.new.worker.cpu_seconds()
        self.wall[name], self.cpu[name] = round(now - self.t, 2), round(cpu - self.c, 2)
        self.t, self.c = now, cpu


def _code_after(s: _Session, stage: str) -> list:
    """The candidate's code fingerprints again, after its calls (reuse loaded by a forward)."""
    code = s.new_call({"cmd": "code"})[0].get("code")
    if not isinstance(code, list):
        raise Verdict("rejected", f"malformed reply to 'code' after {stage}")
    return code


def _check_reuse(task_source: str, source: str, runtime: list) -> None:
    """ModelNew may not run the task's own Model code, however it was loaded (see reuse)."""
    n = reused(task_source, source, runtime)
    if n:
        raise Verdict("rejected", f"ModelNew runs {n} function(s) of the task's own Model loaded from outside the "
                                  f"solution (subclassed, held or delegated to): reusing the reference is not "
                                  f"allowed; a copy of its source written into the solution is")
