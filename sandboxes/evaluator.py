"""`kopt eval`: one honest measurement of a KernelBench solution against its task.

Two fresh sandboxed workers per evaluation -- the reference and the candidate -- driven
in lock-step from this process. Inputs come from the reference worker (the task's own
`get_inputs`, secret seeds), travel to the candidate as bytes, and every output travels
back here to be compared. Timing is the wall clock of *this* process around each
round of calls, so nothing the candidate patches in its own process can change it.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import secrets
import select
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, Field

from kopt.agent.errors import EnvironmentMissing, UserInputError
from kopt.sandboxes import gpu_timing, protocol
from kopt.sandboxes.kernelbench_tasks import load_solution_source, load_task
from kopt.sandboxes.local import Limits, Worker, start_worker
from kopt.sandboxes.native import cache_root, compiler_id
from kopt.sandboxes.reuse import reused
from kopt.sandboxes.static_scan import scan
from kopt.sandboxes.timing import estimate_speedup, speed_verdict

_HARNESS_DIR = str(Path(__file__).resolve().parent)


class EvalConfig(BaseModel):
    device: str = "cpu"
    trials: int = Field(5, ge=1, description="correctness trials on the task's own shapes")
    atol: float = 1e-4
    rtol: float = 1e-4
    threads: int | None = Field(None, description="torch/OpenMP threads, equal for both sides")
    noise_floor: float = Field(0.1, description="'faster' needs the CI's lower bound above 1 + this")
    rounds: int = Field(15, ge=3, description="timed rounds per side")
    round_ms: float = Field(5.0, description="target duration of one timed round")
    max_timing_s: float = Field(30.0, description="time budget for the timed rounds")
    input_budget_s: float = Field(1.5, description="time budget for making fresh inputs for timed calls")
    data_budget_mb: float = Field(512.0, description="inputs + outputs moved for timed calls, all rounds")
    sanity_cap: float = Field(10.0, description="speedups above this are re-measured and flagged")
    edge_shapes: bool = Field(True, description="stress shapes: trials with the input-only size constants at 1 and "
                                                "at an odd size just past the task's (tails, tiny extents)")
    compile_only: bool = False
    setup_timeout_s: float = 600.0
    call_timeout_s: float = 120.0
    memory_mb: int = 8192
    quality_seeds: int = Field(10, ge=2, description="reference-only runs for the task-quality flags")
    hidden_paths: list[str] = Field(default_factory=list,
                                    description="hidden from the candidate, besides the task file (e.g. the run dir)")
    gpu: int | None = Field(None, description="GPU index the workers see (CUDA_VISIBLE_DEVICES); set by --gpus")
    nvcc_filter: bool = Field(False, description="CUDA/CuPy that cannot run here is still compiled with nvcc "
                                                 "(when installed), so a search gets its compile errors early")


class Verdict(Exception):
    """Ends an evaluation early with a verdict and a one-line reason."""

    def __init__(self, verdict: str, reason: str, compiled: bool = True):
        super().__init__(reason)
        self.verdict, self.reason, self.compiled = verdict, reason, compiled


class WorkerFailed(Exception):
    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind, self.message = kind, message


# What kopt reads from the candidate, whatever it sends (its own memory stays bounded).
REPLY_JSON_MAX = 4 << 20
ALARM_READ_MAX = 256 << 10
ALARM_LINE_MAX = 8 << 10
KINDS = ("compile_error", "runtime_error", "timeout", "rejected")


@dataclass
class Channel:
    """Request/response with one worker, with deadlines and its alarms collected. The
    candidate's channel is `hostile`: every reply is validated and its size capped."""

    worker: Worker
    role: str
    hostile: bool = False
    alarms: list[dict] = field(default_factory=list)
    _alarm_buf: bytes = b""
    elapsed: float = 0.0

    def call(self, header: dict, payload=b"", timeout: float = 120.0,
             max_payload: int = 8 << 30) -> tuple[dict, bytes]:
        w, cmd = self.worker, header["cmd"]
        t0 = time.perf_counter()
        try:  # a worker that stops reading must not block kopt's write for ever
            protocol.send(w.to_fd, header, payload, deadline=time.monotonic() + timeout)
        except OSError:
            raise WorkerFailed("runtime_error", self._death_reason()) from None
        except protocol.Late:
            late = f"{self.role} did not take the '{cmd}' request within {timeout:.0f}s"
            raise WorkerFailed("timeout", late) from None
        ready, _, _ = select.select([w.from_fd], [], [], timeout)
        if not ready:
            raise WorkerFailed("timeout", f"{self.role} did not answer '{cmd}' within {timeout:.0f}s")
        try:
            reply, data = protocol.recv(w.from_fd, max_payload, REPLY_JSON_MAX if self.hostile else protocol.MAX_JSON,
                                        deadline=time.monotonic() + timeout)
            self.elapsed = time.perf_counter() - t0  # request out to reply's last byte in: the clock
            if self.hostile:
                reply = _valid_reply(reply, cmd)
        except WorkerFailed:
            raise
        except protocol.Closed:
            raise WorkerFailed("runtime_error", self._death_reason()) from None
        except protocol.ProtocolError as e:
            raise WorkerFailed("rejected", f"malformed reply to '{cmd}': {e}") from None
        except Exception as e:  # noqa: BLE001 - whatever the reply makes kopt raise is a verdict on it
            raise WorkerFailed("rejected", f"unreadable reply to '{cmd}': {type(e).__name__}") from None
        self.read_alarms()
        if not reply.get("ok"):
            raise WorkerFailed(reply.get("kind", "runtime_error"), str(reply.get("error", "failed")))
        return reply, data

    def read_alarms(self) -> None:
        """Alarm lines, read with bounded bytes: a flood (with or without newlines) is itself
        an alarm, never a stall or unbounded memory in kopt."""
        fd, budget = self.worker.alarm_fd, ALARM_READ_MAX
        while budget > 0 and select.select([fd], [], [], 0)[0]:
            chunk = os.read(fd, min(65536, budget))
            if not chunk:
                if self.worker.alive():
                    self._alarm("closed the alarm channel")
                break
            budget -= len(chunk)
            self._alarm_buf += chunk
            *lines, self._alarm_buf = self._alarm_buf.split(b"\n")
            for line in lines[:100]:
                try:
                    alarm = json.loads(line)
                    if not isinstance(alarm, dict) or not isinstance(alarm.get("rule"), str):
                        raise ValueError
                    self.alarms.append({"rule": alarm["rule"][:100], "detail": str(alarm.get("detail", ""))[:300]})
                except Exception:  # noqa: BLE001 - any line kopt cannot parse (deep nesting too) is an alarm
                    self._alarm("wrote to the alarm channel")
            if len(self._alarm_buf) > ALARM_LINE_MAX:
                self._alarm_buf = b""
                self._alarm("flooded the alarm channel")
        if budget <= 0:
            self._alarm("flooded the alarm channel")

    def _alarm(self, detail: str) -> None:
        if len(self.alarms) < 100:
            self.alarms.append({"rule": "tampers with the harness", "detail": detail})

    def _death_reason(self) -> str:
        w = self.worker
        try:
            w.proc.wait(timeout=5)
        except Exception:  # noqa: BLE001
            pass
        rc = w.proc.returncode
        tail = w.output.text().strip().splitlines()[-3:]
        how = f"exit code {rc}" if rc is not None and rc >= 0 else f"signal {-(rc or 0)}"
        if w.cgroup and w.cgroup.memory_exceeded():
            how += ", memory limit exceeded"
        elif rc in (-9, 137) or any("MemoryError" in line or "bad_alloc" in line for line in tail):
            how += " (memory limit?)"
        return f"{self.role} process died ({how}): " + " | ".join(tail)[-400:]


def _valid_reply(reply: dict, cmd: str) -> dict:
    """The candidate's reply header, checked field by field (WorkerFailed 'rejected' if not)."""
    def bad(what: str):
        raise WorkerFailed("rejected", f"malformed reply to '{cmd}': {what}")

    if type(reply.get("ok")) is not bool:
        bad("no ok flag")
    if not reply["ok"]:
        kind, error = reply.get("kind", "runtime_error"), reply.get("error", "failed")
        if kind not in KINDS or not isinstance(error, str):
            bad("an error of unknown kind")
        return {"ok": False, "kind": kind, "error": error[-4000:]}
    for key in ("native_calls",):
        if key in reply and (type(reply[key]) is not int or reply[key] < 0):
            bad(key)
    for key in ("event_ms", "call_wall_ms"):
        if key in reply and (not isinstance(reply[key], list) or len(reply[key]) > 100_000 or
                             not all(type(v) in (int, float) and math.isfinite(v) for v in reply[key])):
            bad(key)
    if "code" in reply and not isinstance(reply["code"], list):
        bad("code")
    if "params" in reply and not (isinstance(reply["params"], list) and all(  # shapes, compared with ==
            isinstance(p, list) and all(type(d) is int for d in p) for p in reply["params"])):
        bad("params")
    return reply


def _check_outputs_blob(data, n_calls: int | None, cmd: str) -> int:
    """Bytes of tensor data in a candidate's outputs, after validating the blob."""
    try:
        tree, _ = protocol.check_blob(data)
    except protocol.ProtocolError as e:
        raise WorkerFailed("rejected", f"unreadable reply to '{cmd}': {e}") from None
    if n_calls is not None and (tree["t"] != "list" or len(tree["v"]) != n_calls):
        raise WorkerFailed("rejected", f"reply to '{cmd}' holds outputs for the wrong number of calls")
    return protocol.blob_tensor_bytes(tree)


def _toolchain_id() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        torch_version = version("torch")
    except PackageNotFoundError:
        torch_version = "?"
    try:
        cxx = compiler_id(os.environ.get("CXX", "g++"))
    except Exception:  # noqa: BLE001
        cxx = "no-cxx"
    return f"{torch_version}|{cxx}|{sys.version.split()[0]}"


def _worker_env(cfg: EvalConfig, threads: int, kernel: str) -> dict[str, str]:
    env = {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "OMP_WAIT_POLICY": "PASSIVE",
           # fixed malloc thresholds: glibc's adaptive ones drift per process and
           # make two identical programs differ by 10-20% on allocation-heavy calls
           "MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(256 << 20)}
    if kernel == "triton" and cfg.device == "cpu":
        env["TRITON_INTERPRET"] = "1"
    if cfg.gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = str(cfg.gpu)
    return env


def build_cache_dir(source: str) -> Path:
    """A worker's own writable build cache, keyed by its code and toolchain: re-evaluating a
    candidate reuses its builds, and no candidate can plant a build another one loads."""
    key = hashlib.sha256((source + "\0" + _toolchain_id()).encode()).hexdigest()[:24]
    path = cache_root() / "sbx" / key
    path.mkdir(parents=True, exist_ok=True)
    return path


def _default_threads() -> int:
    """Half the cores (max 8): the other half keeps kopt and the OS off the timed cores."""
    return max(1, min(8, len(os.sched_getaffinity(0)) // 2))


_CPU_LOCK = threading.Lock()
_CPUS_IN_USE: dict[int, int] = {}


def _claim_cpus(n: int) -> set[int]:
    """The n least-used cores of this process's affinity. Both workers of one evaluation share
    them; evaluations running at once in one kopt (`kopt bench --jobs 2`) get different cores
    where there are enough, instead of all four workers queueing on the same ones."""
    with _CPU_LOCK:
        free = sorted(os.sched_getaffinity(0), key=lambda c: (_CPUS_IN_USE.get(c, 0), c))
        cpus = set(free[:n])
        for c in cpus:
            _CPUS_IN_USE[c] = _CPUS_IN_USE.get(c, 0) + 1
        return cpus


def _release_cpus(cpus: set[int]) -> None:
    with _CPU_LOCK:
        for c in cpus:
            _CPUS_IN_USE[c] = max(0, _CPUS_IN_USE.get(c, 0) - 1)


class _Session:
    """The two workers of one evaluation."""

    def __init__(self, task_path: Path, source: str, kernel: str, cfg: EvalConfig):
        self.cfg = cfg
        self.threads = cfg.threads or _default_threads()
        cpus = self.cpus = _claim_cpus(self.threads)
        limits = Limits(wall_s=cfg.setup_timeout_s + cfg.max_timing_s * 4 + 600, memory_mb=cfg.memory_mb,
                        gpu=cfg.device == "cuda")
        if cfg.device == "cuda":
            limits.memory_mb = 1 << 40  # CUDA maps far more address space than it uses
        argv = [sys.executable, "-m", "kopt.sandboxes.harness"]
        env = _worker_env(cfg, self.threads, kernel)
        ref_limits = Limits(**{**limits.__dict__, "cache_dir": str(build_cache_dir(task_path.read_text())),
                               "read_paths": (str(task_path),)})
        self.ref = Channel(start_worker([*argv, "--role", "ref"], ref_limits, env, cpus), "reference")
        new_limits = Limits(**{**limits.__dict__, "hide_paths": (str(task_path), *cfg.hidden_paths),
                               "cache_dir": str(build_cache_dir(source))})
        self.new = Channel(start_worker([*argv, "--role", "new"], new_limits, env, cpus), "candidate", hostile=True)
        self.source = source
        self.baseline_threads = 0
        self.out_per_call = 0  # largest reference output per call seen: caps the candidate's replies
        self.base_nonfinite = False
        self.checks: dict = {}

    def output_cap(self, n_calls: int) -> int:
        """Most bytes a candidate's outputs for n calls may take: 4x the reference's, plus slack."""
        return 4 * self.out_per_call * n_calls + (1 << 20)

    def close(self) -> None:
        _release_cpus(self.cpus)
        for ch in (self.ref, self.new):
            try:  # a worker that stopped reading gets killed, not waited on
                protocol.send(ch.worker.to_fd, {"cmd": "exit"}, deadline=time.monotonic() + 1)
            except (OSError, protocol.ProtocolError):
                pass
            ch.worker.kill()

    # -- rule checks on the candidate, from outside its process ---------------------------
    def police(self, stage: str) -> None:
        self.new.read_alarms()
        if self.new.alarms:
            a = self.new.alarms[0]
            raise Verdict("rejected", f"{a['rule']}: {a.get('detail', '')}".strip(": "))
        extra = self.new.worker.namespace_pids()
        if extra:
            raise Verdict("rejected", f"a process started by the solution was still alive after {stage} "
                                      f"({len(extra)} process(es))")
        if self.baseline_threads:
            n = self.new.worker.thread_count()
            if n > self.baseline_threads:
                raise Verdict("rejected", f"threads still running after {stage} ({n} > {self.baseline_threads}): "
                                          f"work after forward returns is not allowed")

    def ref_call(self, header: dict, payload=b"", timeout: float | None = None):
        """A call the task's reference must answer: its failure is the task's (UserInputError)."""
        try:
            return self.ref.call(header, payload, timeout or self.cfg.call_timeout_s)
        except WorkerFailed as e:
            raise UserInputError(f"the task's reference failed ({header['cmd']}): {_one_line(e.message)}") from None

    def ref_try(self, header: dict, payload=b"", timeout: float | None = None):
        """A reference call on an extra trial's inputs: a failure skips the trial (SkipTrial)."""
        try:
            return self.ref.call(header, payload, timeout or self.cfg.call_timeout_s)
        except WorkerFailed as e:
            raise SkipTrial(_one_line(e.message, 200)) from None

    def new_call(self, header: dict, payload=b"", timeout: float | None = None, max_payload: int = 1 << 20):
        try:
            return self.new.call(header, payload, timeout or self.cfg.call_timeout_s, max_payload)
        except WorkerFailed as e:
            self.new.read_alarms()
            if self.new.alarms:
                self.police(header["cmd"])
            kind = e.kind if e.kind in KINDS else "runtime_error"
            if kind == "runtime_error":
                self.checks["error_detail"] = solution_frames(e.message)
            compiled = header["cmd"] != "setup" or kind != "compile_error"
            raise Verdict(kind, _one_line(e.message), compiled=compiled) from None

    def compare(self, header: dict, parts: list) -> dict:
        """The candidate's outputs checked in the reference's worker. If the comparison itself
        fails, the candidate's outputs made it fail: rejected, never blamed on the task."""
        sizes = [len(p) for p in parts]
        try:
            return self.ref.call({**header, "cmd": "compare", "parts": sizes}, parts, self.cfg.call_timeout_s)[0]
        except WorkerFailed as e:
            raise Verdict("rejected", f"{header['label']}: the candidate's outputs could not be compared "
                                      f"({_one_line(e.message, 200)})") from None


class SkipTrial(Exception):
    """The reference cannot run an extra trial's inputs: the trial is skipped, with this reason."""


def solution_frames(text: str, limit: int = 2000) -> str:
    """A worker's traceback cut to the solution's own frames and the exception (for a prompt)."""
    lines = str(text).splitlines()
    keep, take = [], False
    for line in lines:
        if line.startswith('  File "'):
            take = f'"{_HARNESS_DIR}/' not in line and "/site-packages/" not in line
        elif not line.startswith("    "):
            take = True
        if take:
            keep.append(line)
    out = "\n".join(keep) or str(text)
    return out[-limit:]


def _one_line(text: str, limit: int = 600) -> str:
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    if not lines:
        return "failed"
    key = next((line for line in reversed(lines) if "rror" in line or "memory limit" in line), lines[-1])
    if "memory limit" in text and "memory limit" not in key:
        key = "memory limit exceeded: " + key
    return key[:limit]


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
    static = scan(source)
    res = _result_base(str(task), str(solution), cfg, static.kernel)
    checks = res["checks"]
    if static.warnings:
        checks["warnings"] = static.warnings
    started = time.perf_counter()
    try:
        if static.rejected:
            raise Verdict("rejected", static.rejected, compiled=False)
        try:
            compile(source, str(solution), "exec")
        except SyntaxError as e:
            raise Verdict("compile_error", f"syntax error line {e.lineno}: {e.msg}", compiled=False) from None
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
        if (res.get("speedup") or 0) > cfg.sanity_cap:
            _remeasure(t.path, Path(solution).resolve(), source, static.kernel, cfg, res)
    except Verdict as v:
        res["verdict"], res["reason"] = v.verdict, v.reason
        res["compiled"] = res["compiled"] or v.compiled and v.verdict != "compile_error"
        res["correct"] = res["correct"] and v.verdict in ("unverified",)
    checks["eval_s"] = round(time.perf_counter() - started, 2)
    return res


def _remeasure(task: Path, sol: Path, source: str, kernel: str, cfg: EvalConfig, res: dict) -> None:
    """A speedup above the sanity cap is measured again from scratch (fresh processes, new
    seeds and inputs); the lower of the two stands, and the result says so."""
    first = res["speedup"]
    again = _result_base(res["task"], res["solution"], cfg, kernel)
    try:
        _run(task, sol, source, kernel, cfg, again)
    except Verdict as v:
        raise Verdict(v.verdict, f"on re-measurement of a {first:.1f}x speedup: {v.reason}") from None
    keep = again if again["speedup"] < first else res
    for key in ("speedup", "speedup_ci", "ref_ms", "new_ms", "verdict"):
        res[key] = keep[key]
    res["checks"]["remeasured"] = {"first": first, "second": again["speedup"]}
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
    from kopt.sandboxes.cuda_compile import find_nvcc

    return find_nvcc() is not None


def _nvcc_compile_only(source: str, res: dict, timeout_s: float) -> None:
    """CUDA and CuPy sources compiled with nvcc where they cannot run: the compiler's
    errors become the verdict; a clean build is `unverified`, never correct."""
    from kopt.sandboxes.cuda_compile import compile_cuda

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
    from kopt.sandboxes.triton_check import check_triton

    problems = check_triton(source)
    if problems:
        raise Verdict("compile_error", problems[0], compiled=False)


def _run(task_path: Path, sol_path: Path, source: str, kernel: str, cfg: EvalConfig, res: dict) -> None:
    t0 = time.perf_counter()
    s = _Session(task_path, source, kernel, cfg)
    s.checks = res["checks"]
    try:
        common = {"device": cfg.device, "threads": s.threads, "task": str(task_path)}
        reply, init_payload = s.ref_call({"cmd": "setup", **common}, timeout=cfg.setup_timeout_s)
        constants = reply.get("constants", {})
        new_reply, _ = s.new_call({"cmd": "setup", **common, "solution": str(sol_path), "source": s.source},
                                  init_payload, timeout=cfg.setup_timeout_s)
        _check_reuse(task_path.read_text(), source, new_reply.get("code") or [])
        phases = res["checks"].setdefault("phase_s", {})
        phases["setup"] = round(time.perf_counter() - t0, 2)
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
        _correctness(s, cfg, res, constants)
        if reply.get("params") and reply["params"] == new_reply.get("params"):
            _reinit_trial(s, cfg, res)
        phases["correctness"] = round(time.perf_counter() - t0 - phases["setup"], 2)
        res["correct"] = True
        if kernel == "triton" and cfg.device == "cpu":
            raise Verdict("unverified", "Triton ran under TRITON_INTERPRET=1 on the CPU: correctness checked, "
                                        "timing is not meaningful (use --device cuda)")
        gpu_before = s.new_call({"cmd": "gpu_state"})[0] if cfg.device == "cuda" else None
        _timing(s, cfg, res)
        if gpu_before is not None:
            _check_gpu_memory(s, gpu_before, res["checks"])
            _compile_baseline(s, cfg, res)
        phases["timing"] = round(time.perf_counter() - t0 - phases["setup"] - phases["correctness"], 2)
    finally:
        s.close()


def _check_reuse(task_source: str, source: str, runtime: list) -> None:
    """ModelNew may not run the task's own Model code, however it was loaded (see reuse)."""
    n = reused(task_source, source, runtime)
    if n:
        raise Verdict("rejected", f"ModelNew runs {n} function(s) of the task's own Model loaded from outside the "
                                  f"solution (subclassed, held or delegated to): reusing the reference is not "
                                  f"allowed; a copy of its source written into the solution is")


def _exchange(s: _Session, seeds: list[int], label: str, signed: bool = False, scale: dict | None = None,
              checked: bool = False, timed: bool = False, base: bool = False, dist: str = "") -> dict:
    """One round: the same fresh inputs to both sides as the same `call` (inputs in, outputs
    back, timed from the request to the reply's last byte), then the candidate's outputs go
    to the reference worker to be checked there (a process the candidate never ran in).

    On a checked trial the reference runs first: inputs it cannot make or run, or where it is
    not finite while the task's own are, raise SkipTrial before the candidate sees them
    (the base trial's raise UserInputError: the task is broken). After a checked call the
    candidate is asked, separately, for its inputs as it left them and for a repeat pass."""
    skippable = checked and not base and not timed
    ref = s.ref_try if skippable else s.ref_call
    cpu0 = s.ref.worker.cpu_seconds()
    gen, inputs = ref({"cmd": "make_inputs", "seeds": seeds, "signed": signed, "scale": scale or {},
                       "dists": [dist] * len(seeds) if dist else None})
    n = len(seeds)
    # both sides seed each forward from this (a stochastic forward draws the same numbers);
    # drawn apart from the input seeds, so it tells the candidate nothing about its inputs
    call, call_seed = {"cmd": "call"}, secrets.randbits(31)
    times = {"gen_cpu": s.ref.worker.cpu_seconds() - cpu0, "gen_s": gen.get("gen_s", 0.0),
             "shapes": gen.get("shapes", []), "dist": dist, "label": label}
    workers = {"new": s.new.worker, "ref": s.ref.worker}
    order = ["new", "ref"] if timed and seeds[0] % 2 else ["ref", "new"]
    for role in order:
        # inputs are put in place first, out of the clock; the timed `call` then carries no
        # payload: forward on them, outputs serialised and received
        put = {"cmd": "put", "seed": call_seed}
        if role == "ref":
            ref(put, inputs)
        else:
            s.new_call(put, inputs)
        c0 = workers[role].cpu_seconds()
        if role == "ref":
            reply, ref_out = ref(dict(call))
        else:
            reply, new_out = s.new_call(dict(call), max_payload=s.output_cap(n))
        times[role] = (s.ref if role == "ref" else s.new).elapsed
        times[f"{role}_run_cpu"] = workers[role].cpu_seconds() - c0
        if s.cfg.device == "cuda":
            gpu = (reply.get("event_ms"), reply.get("call_wall_ms"))
            if not all(isinstance(v, list) and len(v) == n for v in gpu):
                raise Verdict("rejected", f"{label}: the {role} worker's GPU times do not match its {n} call(s)")
            times[f"{role}_gpu"] = gpu
        if role == "ref":
            s.out_per_call = max(s.out_per_call, len(ref_out) // n)
            if checked:  # asked after the clock: the check is not part of the reference's time
                times["ref_nonfinite"] = bool(ref({"cmd": "nonfinite"})[0].get("nonfinite"))
            if skippable and times["ref_nonfinite"] and not s.base_nonfinite:
                raise SkipTrial("the reference is not finite there")
        else:
            s.police("forward")
    new_bytes = _outputs_bytes(new_out, n, "call")
    parts = [new_out]
    c0 = s.new.worker.cpu_seconds()
    if checked:
        _, after = s.new_call({"cmd": "inputs_after"}, max_payload=4 * len(inputs) + (1 << 20))
        _outputs_bytes(after, n, "inputs_after")
        rep, again = s.new_call({"cmd": "repeat", "trace": base}, max_payload=s.output_cap(n))
        _outputs_bytes(again, n, "repeat")
        times["new_native_calls"] = rep.get("native_calls", 0)
        parts += [after, again]
        s.police("repeat")
    times["new_check_cpu"] = s.new.worker.cpu_seconds() - c0
    times["bytes_per_call"] = (len(inputs) + len(new_out)) / n
    times["new_tensor_bytes"] = new_bytes
    cfg = s.cfg
    c0 = s.ref.worker.cpu_seconds()
    times["check"] = s.compare({"label": label, "atol": cfg.atol, "rtol": cfg.rtol}, parts)
    times["check_cpu"] = s.ref.worker.cpu_seconds() - c0
    return times


def _outputs_bytes(data, n_calls: int, cmd: str) -> int:
    try:
        return _check_outputs_blob(data, n_calls, cmd)
    except WorkerFailed as e:
        raise Verdict("rejected", e.message) from None


def _raise_if_failed(times: dict, checks: dict) -> None:
    check = times["check"]
    err = check.get("max_abs_err")
    checks["max_abs_err"] = max(checks.get("max_abs_err", 0.0), err if isinstance(err, (int, float)) else 0.0)
    if check.get("verdict"):
        if check.get("mismatch"):
            checks["mismatch"] = {"trial": times["label"], "shapes": times["shapes"], "dist": times["dist"],
                                  **check["mismatch"]}
        raise Verdict(check["verdict"], check["reason"])


def edge_shapes(constants: dict[str, int]) -> list[dict[str, int]]:
    """Input shapes where kernels tuned to the task's sizes break: every input-only size
    constant at 1 (tiny extents, one-block grids), then at the next odd size past the task's
    that no vector width or block size divides (remainder loops). Shapes the reference
    rejects are skipped by the trial loop."""
    if not constants:
        return []
    tiny = {k: 1 for k in constants}
    odd = {k: v + 1 if (v + 1) % 2 else v + 3 for k, v in constants.items()}
    return [shape for shape in (tiny, odd) if shape != constants]


# A reference call slower than this, or moving more bytes, makes a task "heavy": every extra
# check still runs, each on one input set instead of several (a large task spent 77 s in
# correctness trials).
HEAVY_CALL_S = 0.25
HEAVY_BYTES = 64 << 20


def _trial_groups(cfg: EvalConfig, constants: dict, heavy: bool) -> list[tuple]:
    """(label, seeds, signed, scaled constants, input distribution) of every trial after the
    first base call."""
    def seeds(k: int) -> list[int]:
        return [secrets.randbits(31) for _ in range(1 if heavy else k)]

    n_signed = cfg.trials // 2 if cfg.trials > 1 else 0
    groups = []
    if cfg.trials - n_signed > 1:
        groups.append(("trial", seeds(cfg.trials - n_signed - 1), False, {}, ""))
    if n_signed:
        groups.append(("signed-input trial", seeds(n_signed), True, {}, ""))
    for dist, what in (("heavy", "heavy-tailed"), ("large", "x100"), ("small", "x1e-3")):
        groups.append((f"distribution trial ({what} inputs)", seeds(1), False, {}, dist))
    scaled = {k: v // 2 + 1 for k, v in constants.items()}
    if scaled:
        groups.append(("scaled-shape trial (" + ", ".join(f"{k}={v}" for k, v in scaled.items()) + ")",
                       seeds(2), False, scaled, ""))
    for shape in edge_shapes(constants) if cfg.edge_shapes else []:
        groups.append(("stress-shape trial (" + ", ".join(f"{k}={v}" for k, v in shape.items()) + ")",
                       seeds(1), True, shape, ""))
    return groups


def _correctness(s: _Session, cfg: EvalConfig, res: dict, constants: dict) -> None:
    checks = res["checks"]
    first = _exchange(s, [secrets.randbits(31)], "trial", checked=True, base=True)
    s.base_nonfinite = first["ref_nonfinite"]
    native_calls = first["new_native_calls"]
    _raise_if_failed(first, checks)
    heavy = first["ref"] > HEAVY_CALL_S or first["bytes_per_call"] > HEAVY_BYTES
    if heavy:
        checks["heavy"] = (f"reference call {first['ref']:.2f}s, {first['bytes_per_call'] / 2**20:.0f} MiB moved: "
                           f"one input set per extra trial")
    ran, shapes = 1, 1
    for label, group_seeds, signed, scale, dist in _trial_groups(cfg, constants, heavy):
        base = label == "trial"
        try:
            times = _exchange(s, group_seeds, label, signed, scale, checked=True, base=base, dist=dist)
        except SkipTrial as e:
            checks.setdefault("skipped", []).append(f"{label}: the reference rejects these inputs ({e})"
                                                    if "not finite" not in str(e) else f"{label}: {e}")
            continue
        _raise_if_failed(times, checks)
        ran += len(group_seeds)
        shapes += 1 if scale else 0
    checks.update(trials=ran, shapes=shapes, atol=cfg.atol, rtol=cfg.rtol)
    if res["kernel"] in ("cpp", "cuda", "triton", "cupy") and not native_calls:
        checks["ghost_kernel"] = (f"the solution builds a {res['kernel']} kernel but forward never called "
                                  f"into it: counted as a plain PyTorch solution")
        res["kernel"] = "torch"
    n_quality = min(cfg.quality_seeds, 3) if heavy else cfg.quality_seeds
    reason = s.ref_call({"cmd": "degeneracy", "seeds": [secrets.randbits(31) for _ in range(n_quality)],
                         "atol": cfg.atol, "rtol": cfg.rtol},
                        timeout=cfg.setup_timeout_s)[0].get("reason")
    res["degenerate"] = reason is not None
    if reason:
        res["degenerate_reason"] = reason


def _reinit_trial(s: _Session, cfg: EvalConfig, res: dict) -> None:
    """When ModelNew's parameters line up with Model's, both are re-drawn from a secret seed
    (a second initialisation scheme) for one more trial, then restored."""
    seed = secrets.randbits(31)
    label = "re-initialised-weights trial"
    s.ref_call({"cmd": "reinit", "seed": seed})
    s.new_call({"cmd": "reinit", "seed": seed})
    try:
        times = _exchange(s, [secrets.randbits(31)], label, checked=True)
        _raise_if_failed(times, res["checks"])
        res["checks"]["trials"] += 1
        res["checks"]["weights_reinitialised"] = True
    except SkipTrial as e:
        res["checks"].setdefault("skipped", []).append(f"{label}: {e}")
    finally:
        s.ref_call({"cmd": "reinit", "restore": True})
        s.new_call({"cmd": "reinit", "restore": True})


def _timing(s: _Session, cfg: EvalConfig, res: dict) -> None:
    checks = res["checks"]
    # warm-up round, also sizes the rounds and fixes the thread baseline
    warm = [secrets.randbits(31) for _ in range(3)]
    times = _exchange(s, warm, "warm-up call", timed=True)
    _raise_if_failed(times, checks)
    s.baseline_threads = s.new.worker.thread_count()
    # rounds are sized on the forward work alone, and long enough that the transfer cost
    # subtracted from them (the same for both sides) does not drown the difference
    moved = _transfer_s(s, len(warm))
    per_call = max(1e-6, (min(times[r] for r in ("ref", "new")) - moved) / len(warm))
    slowest = max(times[r] for r in ("ref", "new")) / len(warm)  # gross: what the budget pays for
    rounds = max(5, min(cfg.rounds, int(cfg.max_timing_s / (2 * slowest))))
    calls = min(math.ceil(max(cfg.round_ms / 1000, 2 * moved) / per_call),
                int(cfg.input_budget_s / (rounds * max(times["gen_s"], 1e-6))),
                int(cfg.max_timing_s / (2 * rounds * slowest)),
                int(cfg.data_budget_mb * 2**20 / (rounds * times["bytes_per_call"])), 1000)
    calls = max(1, calls)
    overhead = _transfer_s(s, calls)
    checks["roundtrip_ms"] = round(1000 * overhead, 4)
    est = _timed_rounds(s, cfg, calls, rounds, checks, overhead)
    s.new_call({"cmd": "ping"})  # the harness checks the last call's aftermath at this request
    s.police("the timed calls")
    if cfg.device == "cpu":  # the floor is host memory bandwidth; a GPU's is another matter
        _check_physical_bound(est.new_ms, times["bytes_per_call"], checks)
    res.update(speedup=round(est.speedup, 4), speedup_ci=[round(est.ci[0], 4), round(est.ci[1], 4)],
               ref_ms=round(est.ref_ms, 6), new_ms=round(est.new_ms, 6))
    checks.update(rounds=est.rounds, calls_per_round=calls, threads=s.threads, noise_floor=cfg.noise_floor)
    res["verdict"] = speed_verdict(est, cfg.noise_floor)


def _transfer_s(s: _Session, calls: int, n: int = 5) -> float:
    """What a round's clock holds besides its forward calls: the request, and the reference
    worker sending a round's outputs back (`echo`). Measured in the reference only and
    subtracted from both sides alike, so the candidate cannot inflate it."""
    _, inputs = s.ref_call({"cmd": "make_inputs", "seeds": [secrets.randbits(31) for _ in range(calls)],
                            "signed": False, "scale": {}})
    s.ref_call({"cmd": "put"}, inputs)
    s.ref_call({"cmd": "call"})  # outputs of the same size as a round's
    samples = []
    for _ in range(n):
        s.ref_call({"cmd": "echo"})
        samples.append(s.ref.elapsed)
    return sorted(samples)[n // 2]


def _check_work_outside_forward(s: _Session, start: dict, inside: dict, checks: dict) -> None:
    """CPU the candidate burns while it is *not* being timed, against the reference's.

    Between timed calls both workers only wait for the next request (the reference also
    makes the inputs and checks the outputs, counted as its own work). A candidate that
    defers computation to a thread, or to whatever runs after its reply, shows up here in
    the kernel's accounting, which it cannot patch. The allowance is a share of the
    reference's own work (plus two ticks of the kernel's CPU clock), not a fixed slack.
    """
    outside = {role: (w.worker.cpu_seconds() - start[role]) - inside[role]
               for role, w in (("ref", s.ref), ("new", s.new))}
    checks["cpu_outside_forward_s"] = {k: round(v, 3) for k, v in outside.items()}
    allowed = 1.5 * max(outside["ref"], 0.0) + 0.1 * inside["ref"] + 0.02
    if outside["new"] > allowed:
        raise Verdict("rejected", f"work outside the timed calls: the candidate used "
                                  f"{outside['new']:.2f}s of CPU between calls vs {outside['ref']:.2f}s for the "
                                  f"reference (deferred or background computation)")


def _check_physical_bound(new_ms: float, bytes_per_call: float, checks: dict) -> None:
    """A call cannot beat reading its inputs and writing its outputs once from memory. Only
    for data well past the caches (32 MiB), with a 2x margin for measurement error."""
    if bytes_per_call < 32 << 20:
        return
    from kopt.sandboxes.machine import memory_bandwidth_gbs

    gbs = memory_bandwidth_gbs()
    floor_ms = bytes_per_call / (gbs * 1e9) * 1000
    checks["memory_floor_ms"] = round(floor_ms, 4)
    if new_ms < floor_ms / 2:
        raise Verdict("rejected", f"physically impossible: {new_ms:.4f} ms per call, but moving its "
                                  f"{bytes_per_call / 2**20:.0f} MiB of inputs and outputs once takes "
                                  f"{floor_ms:.4f} ms at this machine's {gbs:.1f} GB/s")


def _gpu_call_ms(times: dict) -> tuple[float, float]:
    """Per-call CUDA event times of a round (reference, candidate), once they agree with the
    clocks out of the candidate's reach (gpu_timing.cross_check)."""
    rounds = {}
    for role in ("ref", "new"):
        event_ms, call_wall_ms = times[f"{role}_gpu"]
        rounds[role] = gpu_timing.RoundTimes(list(event_ms), list(call_wall_ms), times[role] * 1000)
    problem = gpu_timing.cross_check(rounds["ref"], rounds["new"])
    if problem:
        raise Verdict("rejected", problem)
    return gpu_timing.per_call_ms(rounds["ref"]), gpu_timing.per_call_ms(rounds["new"])


def _check_gpu_memory(s: _Session, before: dict, checks: dict) -> None:
    """A wedged CUDA context fails the evaluation; a leak is noted. Either way the worker
    process ends with this evaluation, so the next one starts on a clean GPU."""
    after = s.new_call({"cmd": "gpu_state"})[0]
    checks["gpu_memory"] = {k: round(v, 1) if isinstance(v, float) else v for k, v in after.items() if k != "ok"}
    problem, note = gpu_timing.memory_verdict(before, after)
    if problem:
        raise Verdict("runtime_error", problem)
    if note:
        checks["gpu_memory"]["note"] = note


def _compile_baseline(s: _Session, cfg: EvalConfig, res: dict) -> None:
    """Eager and torch.compile baselines both reported (GPU): `speedup` stays against eager."""
    reply = s.ref_call({"cmd": "compile_baseline"}, timeout=cfg.setup_timeout_s)[0]
    if "ms" in reply and res.get("new_ms"):
        res["checks"]["torch_compile"] = {"ref_ms": round(reply["ms"], 6),
                                          "speedup_vs_compile": round(reply["ms"] / res["new_ms"], 4)}
    else:
        res["checks"]["torch_compile"] = {"error": reply.get("error", "not measured")}


def _timed_rounds(s: _Session, cfg: EvalConfig, calls: int, rounds: int, checks: dict,
                  overhead: float):
    ref_ms, new_ms = [], []
    start = {"ref": s.ref.worker.cpu_seconds(), "new": s.new.worker.cpu_seconds()}
    inside = {"ref": 0.0, "new": 0.0}
    # one timed round, and a third of the others, drawn in secret, are checked like the trials
    # after their calls (inputs left untouched, repeat pass): a call cannot tell it is only timed
    checked = {secrets.randbelow(rounds)} | {r for r in range(rounds) if secrets.randbelow(3) == 0}
    for r in range(rounds):
        seeds = [secrets.randbits(31) for _ in range(calls)]
        times = _exchange(s, seeds, f"timed round {r + 1}", timed=True, checked=r in checked)
        _raise_if_failed(times, checks)
        inside["ref"] += times["ref_run_cpu"] + times["gen_cpu"] + times["check_cpu"]
        inside["new"] += times["new_run_cpu"] + times["new_check_cpu"]
        if cfg.device == "cuda":
            ref_call, new_call = _gpu_call_ms(times)
        else:
            # the transfer cost is subtracted, but never more than 3/4 of a round: where it
            # dominates, its noise would otherwise turn into arbitrary ratios
            ref_call = max(times["ref"] - overhead, times["ref"] / 4) * 1000 / calls
            new_call = max(times["new"] - overhead, times["new"] / 4) * 1000 / calls
        ref_ms.append(ref_call)
        new_ms.append(new_call)
    checks["timed_calls_checked"] = checks.get("timed_calls_checked", 0) + rounds * calls
    _check_work_outside_forward(s, start, inside, checks)
    return estimate_speedup(ref_ms, new_ms, seed=secrets.randbits(31))
