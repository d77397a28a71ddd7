"""The evaluation cache: every measurement kopt makes, kept, so a repeated candidate costs
an evaluation only when the evidence so far cannot decide what the caller needs.

Shared by `kopt optimize`, `kopt bench` and `kopt train` (one SQLite file, WAL, one row per
measurement written when it completes: a killed run loses at most the measurement in flight).

**Key.** A measurement is reused only for the same
- task: the bytes of the task file evaluated (a fitted copy carries its fitted sizes);
- candidate: the bytes of the solution file;
- evaluator settings: `EvalConfig` (all fields but `hidden_paths`, which only hides files);
- evaluator code: a hash of kopt's own evaluator sources (`sandboxes/*.py`, `jail.sh`, the
  task loader) -- any change to how kopt measures invalidates every entry;
- machine: `machine.fingerprint()` plus the toolchain (torch, C++ compiler, Python).
Only kopt's result dict is stored -- never a file, build or process state of the candidate --
and the cache file lives where no sandboxed worker can see it (the jail hides the user's home
and /tmp; the file is also added to `hidden_paths`).

**When a stored candidate is measured again** (`decide`, the rule the tests pin down):
1. nothing stored -> measure;
2. a stored `incorrect` -> served (a candidate once wrong is wrong);
3. the last measurement a `runtime_error`, `timeout`, `rejected`, `compile_error` or
   `unverified`: served when the last `Need.repeat_failures` (2) measurements all are and the
   candidate never passed, else measure (each can come from the moment rather than the code: a
   crash or a compile timeout under load, CPU outside the calls on a busy machine, a GPU that
   was not there; a candidate that fails now and then is not hidden behind old timings either,
   and one that has passed is never stuck with two failures of a busy hour);
4. otherwise the timed measurements (faster / same / slower) are pooled in log2 space: centre `c` = mean
   of log2 speedups; half-width `h` = max(mean per-measurement CI half-width / sqrt(n),
   2 * stdev of the log2 speedups / sqrt(n)) (n >= 2; the second term catches measurements
   that disagree more than their own CIs say). The pooled CI is [2^(c-h), 2^(c+h)].
   It *decides* when no threshold of the need lies strictly inside it and, if the need
   bounds the width, 2h <= `max_log2_width`. Decided, or `max_measurements` reached (more
   measurements on this machine will not narrow it) -> served; else measure once more.
A served result is the latest measurement with the pooled speedup, CI and a verdict
recomputed by the evaluator's own rule; `checks.cache` says how many measurements stand
behind it and whether this call measured.
"""
from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import platform
import shutil
import sqlite3
import statistics
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from kopt.sandboxes.evaluator import EvalConfig, evaluate
from kopt.sandboxes.machine import fingerprint
from kopt.sandboxes.native import cache_root, compiler_id

SCHEMA = 1
CACHE_FILE = "evals.sqlite"
FINAL = ("incorrect",)
TIMED = ("faster", "same", "slower")
FLAKY = ("runtime_error", "timeout", "rejected", "compile_error", "unverified")
_KOPT_ROOT = Path(__file__).resolve().parent.parent


def default_path() -> Path:
    """`$KOPT_EVAL_CACHE` (a file), else `$KOPT_CACHE_DIR/evals.sqlite` (~/.cache/kopt)."""
    return Path(os.environ.get("KOPT_EVAL_CACHE") or cache_root() / CACHE_FILE)


@functools.lru_cache(maxsize=1)
def evaluator_version() -> str:
    """A hash of the code that measures: any edit to it makes every stored verdict stale."""
    h = hashlib.sha256()
    files = sorted((_KOPT_ROOT / "sandboxes").glob("*.py")) + [_KOPT_ROOT / "sandboxes" / "jail.sh"]
    files += sorted((_KOPT_ROOT / "agent" / "targets").rglob("kernelbench*.py"))
    for f in files:
        if f.is_file() and f.name != "eval_cache.py":  # the cache's own policy does not change a measurement
            h.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


@functools.lru_cache(maxsize=1)
def toolchain() -> str:
    """torch, triton, the C++ and CUDA compilers and Python: what builds and runs a candidate
    besides the machine."""
    from importlib.metadata import PackageNotFoundError, version

    def package(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "none"

    torch_version = f"{package('torch')}|triton {package('triton')}"
    nvcc = os.environ.get("KOPT_NVCC") or shutil.which("nvcc") or ""
    torch_version += f"|nvcc {nvcc} {os.environ.get('CUDA_HOME', '')}"
    try:
        cxx = compiler_id(os.environ.get("CXX", "g++"))
    except Exception:  # noqa: BLE001 - no compiler is itself part of the identity
        cxx = "no-cxx"
    return f"{torch_version}|{cxx}|{platform.python_version()}"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def settings_of(cfg: EvalConfig) -> dict:
    return cfg.model_dump(mode="json", exclude={"hidden_paths"})


def cache_key(task_bytes: bytes, code_bytes: bytes, cfg: EvalConfig) -> str:
    blob = json.dumps([SCHEMA, evaluator_version(), _sha(task_bytes), _sha(code_bytes), settings_of(cfg),
                       fingerprint(), toolchain()], sort_keys=True)
    return _sha(blob.encode())[:32]


@dataclass(frozen=True)
class Need:
    """The decision a caller makes with a result, which sets how tight its CI must be."""

    thresholds: tuple[float, ...] = ()
    max_log2_width: float | None = None
    max_measurements: int = 3
    repeat_failures: int = 2

    @classmethod
    def verdict(cls, noise_floor: float = 0.1, max_measurements: int = 3) -> Need:
        """The evaluator's verdict (faster / same / slower) must be settled."""
        return cls((1 + noise_floor, 1 / (1 + noise_floor)), None, max_measurements)

    @classmethod
    def reward(cls, noise_floor: float = 0.1, max_log2_width: float = 0.5, max_measurements: int = 3) -> Need:
        """A training reward: the verdict settled and log2(speedup) known to +-max_log2_width/2."""
        return cls((1 + noise_floor, 1 / (1 + noise_floor)), max_log2_width, max_measurements)


def pooled(timed: list[dict]) -> tuple[float, float, float]:
    """(speedup, ci_lo, ci_hi) pooled over timed measurements, as the module docstring says."""
    logs = [math.log2(r["speedup"]) for r in timed]
    n = len(logs)
    halves = [math.log2(r["speedup_ci"][1] / r["speedup_ci"][0]) / 2 for r in timed
              if r.get("speedup_ci") and r["speedup_ci"][0] > 0]
    c = statistics.fmean(logs)
    h = (statistics.fmean(halves) if halves else 0.0) / math.sqrt(n)
    if n >= 2:
        h = max(h, 2 * statistics.stdev(logs) / math.sqrt(n))
    return 2 ** c, 2 ** (c - h), 2 ** (c + h)


def decide(stored: list[dict], need: Need, noise_floor: float) -> dict | None:
    """The result to serve from `stored` (oldest first) for `need`, or None: measure again."""
    if not stored:
        return None
    final = [r for r in stored if r.get("verdict") in FINAL]
    if final:
        return _served(final[-1], len(stored))
    if stored[-1].get("verdict") in FLAKY:
        tail = stored[-need.repeat_failures:]
        passed = any(r.get("verdict") in TIMED for r in stored)
        if not passed and len(tail) == need.repeat_failures and all(r.get("verdict") in FLAKY for r in tail):
            return _served(stored[-1], len(stored))
        return None
    timed = [r for r in stored if r.get("verdict") in TIMED and r.get("speedup")]
    if not timed:
        return None
    sp, lo, hi = pooled(timed)
    width_ok = need.max_log2_width is None or math.log2(hi / lo) <= need.max_log2_width
    decided = width_ok and not any(lo < t < hi for t in need.thresholds)
    if not decided and len(timed) < need.max_measurements:
        return None
    out = _served(timed[-1], len(timed))
    out.update(speedup=round(sp, 4), speedup_ci=[round(lo, 4), round(hi, 4)])
    out["verdict"] = "faster" if lo > 1 + noise_floor else "slower" if hi < 1 / (1 + noise_floor) else "same"
    out["checks"]["cache"]["decided"] = decided
    return out


def _served(result: dict, n: int) -> dict:
    out = json.loads(json.dumps(result))
    out.setdefault("checks", {})["cache"] = {"measurements": n, "measured_now": False}
    return out


class EvalCache:
    """The SQLite file of measurements. Thread-safe; several processes may share it (WAL)."""

    def __init__(self, path: Path | None = None):
        self.path = Path(path) if path else default_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self.db = sqlite3.connect(self.path, timeout=60, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS measurements (id INTEGER PRIMARY KEY, key TEXT NOT NULL, "
                        "evaluator TEXT, task_sha TEXT, code_sha TEXT, verdict TEXT, created REAL, result TEXT)")
        self.db.execute("CREATE INDEX IF NOT EXISTS by_key ON measurements(key)")

    def measurements(self, key: str) -> list[dict]:
        with self._lock:
            rows = self.db.execute("SELECT result FROM measurements WHERE key=? ORDER BY id", (key,)).fetchall()
        return [json.loads(r[0]) for r in rows]

    def add(self, key: str, task_bytes: bytes, code_bytes: bytes, result: dict) -> None:
        clean = json.loads(json.dumps(result, default=str))
        clean.get("checks", {}).pop("cache", None)
        with self._lock:
            self.db.execute("INSERT INTO measurements (key, evaluator, task_sha, code_sha, verdict, created, result) "
                            "VALUES (?,?,?,?,?,?,?)", (key, evaluator_version(), _sha(task_bytes)[:16],
                                                       _sha(code_bytes)[:16], clean.get("verdict"), time.time(),
                                                       json.dumps(clean)))

    def stats(self) -> dict:
        with self._lock:
            q = self.db.execute
            n, keys = q("SELECT COUNT(*), COUNT(DISTINCT key) FROM measurements").fetchone()
            verdicts = dict(q("SELECT verdict, COUNT(*) FROM measurements GROUP BY verdict").fetchall())
            stale = q("SELECT COUNT(*) FROM measurements WHERE evaluator != ?", (evaluator_version(),)).fetchone()[0]
            span = q("SELECT MIN(created), MAX(created) FROM measurements").fetchone()
        size = sum(p.stat().st_size for p in self.path.parent.glob(self.path.name + "*") if p.is_file())
        return {"path": str(self.path), "candidates": keys, "measurements": n, "verdicts": verdicts,
                "stale_evaluator": stale, "bytes": size,
                "oldest": _when(span[0]), "newest": _when(span[1])}

    def clear(self) -> int:
        with self._lock:
            n = self.db.execute("SELECT COUNT(*) FROM measurements").fetchone()[0]
            self.db.execute("DELETE FROM measurements")
            self.db.execute("VACUUM")
        return n

    def close(self) -> None:
        self.db.close()


def _when(t: float | None) -> str | None:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t)) if t else None


class CachedEvaluator:
    """An `evaluate(task, solution, cfg)` that goes through the cache (an `EvalFn` for
    `LocalExecutor`, the search, the trainer's reward). `fresh_on_repeat`: a second request
    for the same candidate (same task and code) in this session is the caller asking for a new
    sample (the search's re-evaluation on fresh seeds): it is measured, stored and returned as
    measured. A session that spans processes (a resumed search) says which candidates it has
    measured already with `remember`, or its first re-measurement would be served."""

    def __init__(self, cache: EvalCache, evaluate_fn: Callable[[Path, Path, EvalConfig], dict] | None = None,
                 need: Need | None = None, fresh_on_repeat: bool = False):
        self.cache, self.evaluate_fn, self.need = cache, evaluate_fn or evaluate, need
        self.fresh_on_repeat = fresh_on_repeat
        self.seen: set[tuple[str, str]] = set()
        self.hits = self.measured = 0
        self._lock = threading.Lock()

    def remember(self, task: Path, codes: Iterable[str]) -> None:
        """Candidates of `task` this session measured before this process started: the next
        request for any of them is a repeat (with `fresh_on_repeat`, a fresh measurement)."""
        task_sha = _sha(Path(task).read_bytes())
        with self._lock:
            self.seen.update((task_sha, _sha(code.encode())) for code in codes)

    def __call__(self, task: Path, solution: Path, cfg: EvalConfig) -> dict:
        return self.evaluate_with(self.evaluate_fn, task, solution, cfg)

    def hidden(self) -> list[str]:
        """The cache's files, hidden from every worker (the jail already blanks home and /tmp)."""
        return [str(self.cache.path.resolve()) + tail for tail in ("", "-wal", "-shm")]

    def evaluate_with(self, evaluate_fn, task: Path, solution: Path, cfg: EvalConfig) -> dict:
        task_bytes, code_bytes = Path(task).read_bytes(), Path(solution).read_bytes()
        key = cache_key(task_bytes, code_bytes, cfg)
        need = self.need or Need.verdict(cfg.noise_floor)
        candidate = (_sha(task_bytes), _sha(code_bytes))  # settings aside: a repeat is measured, never wrong
        with self._lock:
            repeat = candidate in self.seen
            self.seen.add(candidate)
        fresh = repeat and self.fresh_on_repeat
        if not fresh:
            served = decide(self.cache.measurements(key), need, cfg.noise_floor)
            if served is not None:
                with self._lock:
                    self.hits += 1
                served.update(task=str(task), solution=str(solution))
                return served
        hidden = list(dict.fromkeys([*cfg.hidden_paths, *self.hidden()]))
        result = evaluate_fn(Path(task), Path(solution), cfg.model_copy(update={"hidden_paths": hidden}))
        with self._lock:
            self.measured += 1
        self.cache.add(key, task_bytes, code_bytes, result)
        if fresh:  # the sample asked for, as measured; the record says it is one
            result.setdefault("checks", {})["cache"] = {"measurements": len(self.cache.measurements(key)),
                                                        "measured_now": True, "repeat": True}
            return result
        served = decide(self.cache.measurements(key), need, cfg.noise_floor) or _served(result, 1)
        served["checks"]["cache"]["measured_now"] = True
        served.update(task=str(task), solution=str(solution))
        return served


class CachedExecutor:
    """Any executor (local threads, Ray) behind the cache: a served result is a finished
    future; a measurement goes to the inner executor and is stored when it completes."""

    def __init__(self, inner, cached: CachedEvaluator):
        self.inner, self.cached = inner, cached
        self.name, self.jobs = inner.name, inner.jobs

    def _through_inner(self, task: Path, solution: Path, cfg: EvalConfig) -> dict:
        return self.inner.submit(task, solution, cfg).result()

    def submit(self, task: Path, solution: Path, cfg: EvalConfig) -> Future:
        fut: Future = Future()

        def run() -> None:
            try:
                fut.set_result(self.cached.evaluate_with(self._through_inner, task, solution, cfg))
            except BaseException as e:  # noqa: BLE001 - handed to whoever waits on the future
                fut.set_exception(e)

        threading.Thread(target=run, daemon=True, name="kopt-eval-cache").start()
        return fut

    def shutdown(self) -> None:
        self.inner.shutdown()
