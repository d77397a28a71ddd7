"""One evaluation's configuration and its two workers (reference and candidate): how they
are started (environment, build cache, cores), and the calls each side must answer."""
from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

from pydantic import BaseModel, Field

from kopt.agent.errors import UserInputError
from kopt.sandboxes import build_cache, protocol, reuse
from kopt.sandboxes.eval_channel import KINDS, Channel, WorkerFailed
from kopt.sandboxes.local import Limits, cache_problem, start_worker
from kopt.sandboxes.native import compiler_id

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
    confirm: bool = Field(True, description="a `faster` or `slower` verdict is timed again on a fresh pair of "
                                            "workers and stands only where both pairs agree")
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


# the candidate's requests may take this many times the reference's in all (plus one
# call_timeout_s for first-call builds) before the evaluation ends as `timeout`
CANDIDATE_TIME_FACTOR = 20
# Triton on the CPU runs in its interpreter (correctness only, far slower than any reference):
# a larger factor, never none (a forward that launched one kernel and slept went unbounded)
INTERPRETED_TIME_FACTOR = 500
REF_ONLY = ("setup", "compile_baseline", "degeneracy")  # reference work the candidate never mirrors


class Verdict(Exception):
    """Ends an evaluation early with a verdict and a one-line reason."""

    def __init__(self, verdict: str, reason: str, compiled: bool = True, checked: bool = True):
        super().__init__(reason)
        self.verdict, self.reason, self.compiled = verdict, reason, compiled
        self.checked = checked  # False: an `unverified` whose outputs were not all judged

    def reworded(self, reason: str) -> Verdict:
        """The same verdict with another reason: a re-raise that rebuilt it from verdict and
        reason alone made an unjudged `unverified` on the fresh pair `correct` (red team 33)."""
        return Verdict(self.verdict, reason, self.compiled, self.checked)


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
           # make two identical programs differ by 10-20% on allocation-heavy calls. Every
           # tensor past 64 KiB gets fresh pages from the kernel, on both sides: with heap
           # reuse the reference's outputs landed in chunks its own input-making had just
           # left warm in cache, and copies of memory-bound tasks read 0.74-0.89x
           "MALLOC_MMAP_THRESHOLD_": str(64 << 10), "MALLOC_TRIM_THRESHOLD_": str(256 << 20)}
    if cfg.device == "cpu":
        env["KOPT_CONFINE_READS"] = "1"  # harness_support.confine_reads
    if kernel == "triton" and cfg.device == "cpu":
        env["TRITON_INTERPRET"] = "1"
    if cfg.gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = str(cfg.gpu)
    return env


def build_cache_dir(source: str) -> Path:
    """The build outputs of one source and toolchain, shared by its evaluations: re-evaluating
    a candidate reuses its builds, no candidate can plant a build another one loads, and each
    worker writes a fresh copy only (build_cache)."""
    return build_cache.build_cache_dir(source, _toolchain_id())


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
        # the float64 second opinion's time over the whole evaluation: a candidate that misses the
        # tolerance on every call made the reference spend half the call limit a round (red team 28)
        self.float64_left = cfg.call_timeout_s
        # both workers import torch on every core, then pin themselves to these at setup
        self.cpus = _claim_cpus(self.threads)
        # what a worker brought into the page cache leaves with it: no bits for a later evaluation
        limits = Limits(wall_s=cfg.setup_timeout_s + cfg.max_timing_s * 4 + 600, memory_mb=cfg.memory_mb,
                        gpu=cfg.device == "cuda", evict_at_exit=True)
        if cfg.device == "cuda":
            limits.memory_mb = 1 << 40  # CUDA maps far more address space than it uses
        argv = [sys.executable, "-m", "kopt.sandboxes.harness"]
        env = _worker_env(cfg, self.threads, kernel)
        # each worker builds in a fresh folder; its build outputs are promoted at close
        self.caches = [(build_cache.fresh_cache_dir(shared), shared)
                       for shared in (build_cache_dir(task_path.read_text()), build_cache_dir(source))]
        ref_limits = Limits(**{**limits.__dict__, "cache_dir": str(self.caches[0][0]),
                               "read_paths": (str(task_path),)})
        new_limits = Limits(**{**limits.__dict__, "hide_paths": (str(task_path), *cfg.hidden_paths),
                               "cache_dir": str(self.caches[1][0])})
        ref = None
        try:
            ref = start_worker([*argv, "--role", "ref"], ref_limits, env, shm=True)
            new = start_worker([*argv, "--role", "new"], new_limits, env, shm=True)
        except BaseException:  # no close() will come: nothing may be left behind
            if ref is not None:
                ref.kill()
            for run, shared in self.caches:
                build_cache.promote(run, shared)
            _release_cpus(self.cpus)
            raise
        self.ref, self.new = Channel(ref, "reference"), Channel(new, "candidate", hostile=True)
        self.source = source
        self.baseline_threads = 0
        self.out_per_call = 0  # largest reference output per call seen: caps the candidate's replies
        self.base_nonfinite = False
        self.checks: dict = {}
        # Triton on the CPU runs in its interpreter: its requests get INTERPRETED_TIME_FACTOR only
        # once the base trial has counted a Triton launch (`import triton` alone escaped: red team 5)
        self.interpreted = False
        self.ref_busy_s = 0.0  # time in the reference's requests the candidate also gets (setup aside)
        self.new_busy_s = 0.0
        # the reuse scans: the task's function names, and their live fingerprints in the
        # candidate's worker before its solution loads, held here where it cannot edit them
        self.code_names = reuse.task_code_names(task_path.read_text())
        self.code_before: frozenset[str] | None = None

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
            ch.release()
        for run, shared in self.caches:  # the workers are dead: nothing changes under this
            build_cache.promote(run, shared)

    # -- rule checks on the candidate, from outside its process ---------------------------
    def police(self, stage: str) -> None:
        self.new.read_alarms()
        if self.new.alarms:
            a = self.new.alarms[0]
            raise Verdict("rejected", f"{a['rule']}: {a.get('detail', '')}".strip(": "))
        if _alarm_fd_replaced(self.new.worker):
            raise Verdict("rejected", f"the alarm channel was closed or replaced in the solution's process "
                                      f"(seen after {stage}): every alarm it would carry is lost")
        extra = self.new.worker.namespace_pids()
        if extra:
            raise Verdict("rejected", f"a process started by the solution was still alive after {stage} "
                                      f"({len(extra)} process(es))")
        self._check_affinity(stage)
        self._check_cache_size(stage)
        self._check_reply_mapping(stage)
        if self.baseline_threads:
            n = self.new.worker.thread_count()
            if n > self.baseline_threads:
                raise Verdict("rejected", f"threads still running after {stage} ({n} > {self.baseline_threads}): "
                                          f"work after forward returns is not allowed")

    def _pinned(self, channel: Channel, header: dict, reply):
        """After setup, both workers' threads are pinned to the evaluation's cores from here."""
        if header["cmd"] == "setup":
            channel.worker.pin(self.cpus)
        return reply

    def _check_reply_mapping(self, stage: str) -> None:
        """The harness writes and reads the reply memfd (`kopt-io`) with pwritev/preadv and never
        maps it: a mapping of it in the candidate's worker is the candidate's, writing its outputs
        where the reply's copy will land (that copy then costs it nothing: faster 1.46x on an
        identical relu, red team 7). Read from the kernel (/proc/<pid>/maps), out of its reach."""
        w = self.new.worker
        pids = [p for p in (w.root_pid(), *w.namespace_pids()) if p] if hasattr(w, "root_pid") else []
        for pid in pids:
            try:
                with open(f"/proc/{pid}/maps") as f:
                    mapped = any("/memfd:kopt-io" in line for line in f)
            except OSError:  # said where the verdict is read, once
                note = "; reply mapping not checked (the kernel shows kopt no map of the worker)"
                if note not in self.checks.get("sandbox", note):
                    self.checks["sandbox"] += note
                return
            if mapped:
                raise Verdict("rejected", f"the solution mapped the harness's reply memory (seen after {stage}): "
                                          f"outputs written where the reply is copied skip the copy both sides pay")

    def _check_cache_size(self, stage: str) -> None:
        """The candidate's writable build folder stays under its cap while it runs: the host's
        disk is behind it (red team 7 filled 600 MB there at import; only the folder's removal
        at the end looked at its size)."""
        w = self.new.worker
        folder, cap = getattr(w, "cache_dir", None), getattr(w, "cache_mb", 0)
        if folder and cap and (problem := cache_problem(folder, cap, w)):
            raise Verdict("rejected", f"{problem}; seen after {stage})")

    def _check_affinity(self, stage: str) -> None:
        """Every thread of the candidate stays on the cores both workers were pinned to at
        setup (read from the kernel: a candidate cannot forge it). Widening its affinity, or
        starting threads on other cores, would use cores the reference does not."""
        cores = self.new.worker.allowed_cpus()
        if cores is None:  # said where the verdict is read, once
            note = "; cpu affinity not checked (the kernel shows kopt no thread of the worker)"
            if note not in self.checks.get("sandbox", note):
                self.checks["sandbox"] += note
        elif not cores <= self.cpus:
            extra = ",".join(str(c) for c in sorted(cores - self.cpus)[:8])
            raise Verdict("rejected", f"the solution widened its CPU affinity (cores {extra} besides the "
                                      f"{len(self.cpus)} both sides run on; seen after {stage})")

    def _ref_timed(self, header: dict, payload, timeout: float | None):
        start = time.monotonic()
        try:
            return self._pinned(self.ref, header, self.ref.call(header, payload, timeout or self.cfg.call_timeout_s))
        finally:
            if header["cmd"] not in REF_ONLY:
                self.ref_busy_s += time.monotonic() - start

    def ref_call(self, header: dict, payload=b"", timeout: float | None = None):
        """A call the task's reference must answer: its failure is the task's (UserInputError)."""
        try:
            return self._ref_timed(header, payload, timeout)
        except WorkerFailed as e:
            raise UserInputError(f"the task's reference failed ({header['cmd']}): {_one_line(e.message)}") from None

    def ref_try(self, header: dict, payload=b"", timeout: float | None = None):
        """A reference call on an extra trial's inputs: a failure skips the trial (SkipTrial)."""
        try:
            return self._ref_timed(header, payload, timeout)
        except WorkerFailed as e:
            raise SkipTrial(_one_line(e.message, 200)) from None

    def candidate_time_left(self) -> float:
        """Seconds the candidate's requests (setup aside) may still take in this evaluation: a
        first-call allowance (`call_timeout_s`, JIT builds) plus CANDIDATE_TIME_FACTOR times what
        the reference's matching requests took. Without it a forward that sleeps just under the
        per-call timeout held kopt for ~26 timeouts (about 22 minutes at the default)."""
        return self.cfg.call_timeout_s + self._time_factor() * self.ref_busy_s - self.new_busy_s

    def _time_factor(self) -> int:
        return INTERPRETED_TIME_FACTOR if self.interpreted else CANDIDATE_TIME_FACTOR

    def new_call(self, header: dict, payload=b"", timeout: float | None = None, max_payload: int = 1 << 20):
        if header["cmd"] in ("setup", "code"):
            return self._with_code(header, payload, timeout, max_payload)
        return self._new_call(header, payload, timeout, max_payload)

    def _with_code(self, header: dict, payload, timeout: float | None, max_payload: int):
        """setup and the reuse scans: the live fingerprints kopt took before the solution
        loaded are subtracted here, in kopt's process (the reply's `code` then holds the
        model's fingerprints and every function named like the task's that appeared since)."""
        header = {**header, "names": self.code_names}
        if header["cmd"] == "setup" and self.code_before is None:  # no solution code has run yet
            self.code_before = frozenset(self._live(self._new_call({"cmd": "code", "names": self.code_names},
                                                                   timeout=timeout)[0]))
        reply, data = self._new_call(header, payload, timeout, max_payload)
        if reply.get("ok") is True:
            reply = {**reply, "code": sorted(set(reply.get("code") or []) |
                                             (set(self._live(reply)) - (self.code_before or frozenset())))}
        return reply, data

    @staticmethod
    def _live(reply: dict) -> list:
        live = reply.get("live")
        if not (isinstance(live, list) and all(type(h) is str for h in live)):
            raise Verdict("rejected", "malformed reply to 'code': no list of fingerprints")
        return live

    def _new_call(self, header: dict, payload=b"", timeout: float | None = None, max_payload: int = 1 << 20):
        budgeted = header["cmd"] != "setup" and self.code_before is not None  # kopt's own scan before setup
        limit = timeout or self.cfg.call_timeout_s
        if budgeted:
            left = self.candidate_time_left()
            if left <= 0:
                raise Verdict("timeout", self._over_budget())
            limit = min(limit, left)
        start = time.monotonic()
        try:
            return self._pinned(self.new, header, self.new.call(header, payload, limit, max_payload))
        except WorkerFailed as e:
            if budgeted and e.kind == "timeout" and self.candidate_time_left() - (time.monotonic() - start) <= 0:
                raise Verdict("timeout", self._over_budget()) from None
            self.new.read_alarms()
            if self.new.alarms:
                self.police(header["cmd"])
            kind = e.kind if e.kind in KINDS else "runtime_error"
            if kind == "runtime_error":
                self.checks["error_detail"] = solution_frames(e.message)
            compiled = header["cmd"] != "setup" or kind != "compile_error"
            raise Verdict(kind, _one_line(e.message), compiled=compiled) from None
        finally:
            if budgeted:
                self.new_busy_s += time.monotonic() - start

    def _over_budget(self) -> str:
        return (f"the solution's calls took {self.new_busy_s:.0f}s in all against the reference's "
                f"{self.ref_busy_s:.1f}s (limit: {self.cfg.call_timeout_s:.0f}s + {self._time_factor()}x the "
                f"reference's)")

    def compare(self, header: dict, parts: list) -> dict:
        """The candidate's outputs checked in the reference's worker. If the comparison itself
        fails, the candidate's outputs made it fail: rejected, never blamed on the task."""
        sizes = [len(p) for p in parts]
        try:
            return self.ref.call({**header, "cmd": "compare", "parts": sizes}, parts, self.cfg.call_timeout_s)[0]
        except WorkerFailed as e:
            raise Verdict("rejected", f"{header['label']}: the candidate's outputs could not be compared "
                                      f"({_one_line(e.message, 200)})") from None


def _alarm_fd_replaced(worker) -> bool:
    """Whether the worker's alarm fd is no longer the pipe kopt reads. A solution that kept a dup
    of it (so kopt never saw the channel close) and put /dev/null in its place lost every alarm
    the harness raised after that (a patched timer went unreported). Read from /proc, outside
    the candidate; a host that hides the worker's fds from kopt answers False."""
    args, pid = [str(a) for a in getattr(worker.proc, "args", ())], worker.root_pid()
    try:
        fd = int(args[args.index("--fd-alarm") + 1])
        return pid is not None and os.readlink(f"/proc/{pid}/fd/{fd}") != f"pipe:[{os.fstat(worker.alarm_fd).st_ino}]"
    except FileNotFoundError:
        return worker.alive()  # closed: alarms written to it fail silently
    except (ValueError, IndexError, OSError):
        return False


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
