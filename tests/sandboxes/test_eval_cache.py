"""The evaluation cache: when a stored candidate is measured again, and what invalidates it.

The policy tests feed `decide` measurement dicts; the wiring tests count how often the
wrapped evaluator is really called (a stand-in for the sandbox, which is slow), and one test
runs the real evaluator twice through the cache."""
from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from kopt.sandboxes import eval_cache
from kopt.sandboxes.eval_cache import CachedEvaluator, EvalCache, Need, decide, pooled
from kopt.sandboxes.evaluator import EvalConfig

EXAMPLES = Path(__file__).resolve().parents[2] / "benchmarks" / "examples"


def timed(speedup: float, lo: float, hi: float, verdict: str | None = None) -> dict:
    v = verdict or ("faster" if lo > 1.1 else "slower" if hi < 1 / 1.1 else "same")
    return {"verdict": v, "correct": True, "speedup": speedup, "speedup_ci": [lo, hi], "checks": {}}


def test_nothing_stored_is_measured():
    assert decide([], Need.verdict(), 0.1) is None


def test_a_wrong_answer_is_served_even_after_timed_ones():
    stored = [timed(2.0, 1.9, 2.1), {"verdict": "incorrect", "correct": False, "speedup": None, "checks": {}}]
    out = decide(stored, Need.verdict(), 0.1)
    assert out["verdict"] == "incorrect" and out["checks"]["cache"]["measurements"] == 2


# each of these can come from the moment (load, a compile timeout, CPU outside the calls on a busy
# machine, no GPU at the time), not from the code: never served on one measurement
@pytest.mark.parametrize("verdict", ["runtime_error", "timeout", "rejected", "compile_error", "unverified"])
def test_a_failure_of_the_moment_is_trusted_only_once_it_repeats(verdict):
    failed = {"verdict": verdict, "correct": False, "checks": {}}
    assert decide([failed], Need.verdict(), 0.1) is None
    assert decide([timed(2.0, 1.9, 2.1), failed], Need.verdict(), 0.1) is None  # not hidden behind an old timing
    assert decide([failed, failed], Need.verdict(), 0.1)["verdict"] == verdict


def test_a_tight_ci_clear_of_the_thresholds_is_served():
    out = decide([timed(2.0, 1.9, 2.1)], Need.verdict(), 0.1)
    assert out["verdict"] == "faster" and out["speedup"] == pytest.approx(2.0)
    assert out["checks"]["cache"]["decided"] is True


def test_a_ci_straddling_the_faster_threshold_is_measured_again_up_to_the_cap():
    wide = timed(1.15, 1.02, 1.3, "same")
    need = Need.verdict(max_measurements=3)
    assert decide([wide], need, 0.1) is None
    assert decide([wide, wide], need, 0.1) is None
    out = decide([wide, wide, wide], need, 0.1)  # the cap: more of the same will not settle it
    assert out is not None and out["checks"]["cache"]["decided"] is False
    assert out["checks"]["cache"]["measurements"] == 3


def test_same_inside_the_band_is_decided():
    assert decide([timed(1.0, 0.97, 1.03)], Need.verdict(), 0.1)["verdict"] == "same"


def test_the_reward_need_also_bounds_the_width():
    wide_but_clear = timed(3.0, 2.0, 4.5)  # clear of both thresholds, log2 width 1.17
    assert decide([wide_but_clear], Need.verdict(), 0.1) is not None
    assert decide([wide_but_clear], Need.reward(max_log2_width=0.5), 0.1) is None


def test_disagreeing_measurements_widen_the_pooled_ci():
    a, b = timed(1.5, 1.45, 1.55), timed(0.9, 0.88, 0.92)  # each tight, far apart
    sp, lo, hi = pooled([a, b])
    assert lo < 1 / 1.1 and hi > 1.1  # the spread, not the per-measurement CIs, sets the width
    assert decide([a, b], Need.verdict(), 0.1) is None


def test_pooling_narrows_agreeing_measurements():
    m = timed(1.2, 1.05, 1.37)
    _, lo1, hi1 = pooled([m])
    _, lo3, hi3 = pooled([m, timed(1.21, 1.06, 1.38), timed(1.19, 1.04, 1.36)])
    assert hi3 / lo3 < hi1 / lo1


# -- wiring: a counting stand-in for the sandboxed evaluator --------------------------------

class Counting:
    def __init__(self, *results: dict):
        self.results, self.calls = list(results), []

    def __call__(self, task, solution, cfg):
        self.calls.append(cfg)
        r = self.results[min(len(self.calls), len(self.results)) - 1]
        return {**r, "checks": dict(r.get("checks", {}))}


@pytest.fixture
def files(tmp_path):
    task, sol = tmp_path / "task.py", tmp_path / "sol.py"
    shutil.copy(EXAMPLES / "relu_task.py", task)
    sol.write_text("# candidate\n" + task.read_text())
    return task, sol


def test_a_repeated_candidate_costs_no_evaluation(tmp_path, files):
    fn = Counting(timed(2.0, 1.9, 2.1))
    cached = CachedEvaluator(EvalCache(tmp_path / "c.sqlite"), fn)
    first, second = cached(*files, EvalConfig()), cached(*files, EvalConfig())
    assert len(fn.calls) == 1 and first["speedup"] == second["speedup"] == pytest.approx(2.0)
    assert first["checks"]["cache"]["measured_now"] and not second["checks"]["cache"]["measured_now"]
    again = CachedEvaluator(EvalCache(tmp_path / "c.sqlite"), fn)  # another process, same file
    again(*files, EvalConfig())
    assert len(fn.calls) == 1 and again.hits == 1


def test_the_cache_file_is_hidden_from_the_worker(tmp_path, files):
    fn = Counting(timed(2.0, 1.9, 2.1))
    cached = CachedEvaluator(EvalCache(tmp_path / "c.sqlite"), fn)
    cached(*files, EvalConfig(hidden_paths=["/somewhere"]))
    hidden = fn.calls[0].hidden_paths
    assert "/somewhere" in hidden and str((tmp_path / "c.sqlite").resolve()) in hidden


def test_fresh_on_repeat_measures_and_stores_every_request(tmp_path, files):
    fn = Counting(timed(2.0, 1.9, 2.1), timed(1.8, 1.7, 1.9))
    cached = CachedEvaluator(EvalCache(tmp_path / "c.sqlite"), fn, fresh_on_repeat=True)
    cached(*files, EvalConfig())
    second = cached(*files, EvalConfig())
    assert len(fn.calls) == 2 and second["speedup"] == 1.8
    assert len(cached.cache.measurements(eval_cache.cache_key(*(p.read_bytes() for p in files), EvalConfig()))) == 2


def _measures_again(tmp_path, files, change) -> bool:
    fn = Counting(timed(2.0, 1.9, 2.1))
    path = tmp_path / "c.sqlite"
    CachedEvaluator(EvalCache(path), fn)(*files, EvalConfig())
    cfg = change() or EvalConfig()
    CachedEvaluator(EvalCache(path), fn)(*files, cfg)
    return len(fn.calls) == 2


def test_invalidated_by_the_task(tmp_path, files):
    task, _ = files
    assert _measures_again(tmp_path, files, lambda: task.write_text(task.read_text().replace("64", "32")) and None)


def test_invalidated_by_the_candidate(tmp_path, files):
    _, sol = files
    assert _measures_again(tmp_path, files, lambda: sol.write_text(sol.read_text() + "\n# edit\n") and None)


def test_invalidated_by_the_evaluator_settings(tmp_path, files):
    assert _measures_again(tmp_path, files, lambda: EvalConfig(trials=3))


def test_not_invalidated_by_hidden_paths(tmp_path, files):
    assert not _measures_again(tmp_path, files, lambda: EvalConfig(hidden_paths=["/elsewhere"]))


def test_invalidated_by_the_evaluator_code(tmp_path, files, monkeypatch):
    monkeypatch.setattr(eval_cache, "evaluator_version", lambda: "edited-evaluator")
    fn = Counting(timed(2.0, 1.9, 2.1))
    path = tmp_path / "c.sqlite"
    CachedEvaluator(EvalCache(path), fn)(*files, EvalConfig())
    monkeypatch.setattr(eval_cache, "evaluator_version", lambda: "edited-again")
    CachedEvaluator(EvalCache(path), fn)(*files, EvalConfig())
    assert len(fn.calls) == 2


def test_the_evaluator_version_follows_the_evaluator_source(tmp_path, monkeypatch):
    fake = tmp_path / "kopt"
    shutil.copytree(Path(eval_cache.__file__).parent, fake / "sandboxes")
    (fake / "agent" / "targets").mkdir(parents=True)
    monkeypatch.setattr(eval_cache, "_KOPT_ROOT", fake)
    eval_cache.evaluator_version.cache_clear()
    try:
        before = eval_cache.evaluator_version()
        (fake / "sandboxes" / "timing.py").write_text((fake / "sandboxes" / "timing.py").read_text() + "\n# x\n")
        eval_cache.evaluator_version.cache_clear()
        assert eval_cache.evaluator_version() != before
    finally:
        eval_cache.evaluator_version.cache_clear()


def test_invalidated_by_the_machine(tmp_path, files, monkeypatch):
    fn = Counting(timed(2.0, 1.9, 2.1))
    path = tmp_path / "c.sqlite"
    CachedEvaluator(EvalCache(path), fn)(*files, EvalConfig())
    monkeypatch.setattr(eval_cache, "fingerprint", lambda: {"cpu": "another machine"})
    CachedEvaluator(EvalCache(path), fn)(*files, EvalConfig())
    assert len(fn.calls) == 2


def test_stats_and_clear(tmp_path, files):
    cache = EvalCache(tmp_path / "c.sqlite")
    CachedEvaluator(cache, Counting({"verdict": "incorrect", "correct": False, "checks": {}}))(*files, EvalConfig())
    st = cache.stats()
    assert st["measurements"] == 1 and st["candidates"] == 1 and st["verdicts"] == {"incorrect": 1}
    assert cache.clear() == 1 and cache.stats()["measurements"] == 0


def test_only_the_result_dict_is_stored(tmp_path, files):
    fn = Counting(timed(2.0, 1.9, 2.1))
    CachedEvaluator(EvalCache(tmp_path / "c.sqlite"), fn)(*files, EvalConfig())
    cols = [r[1] for r in sqlite3.connect(tmp_path / "c.sqlite").execute("PRAGMA table_info(measurements)")]
    assert cols == ["id", "key", "evaluator", "task_sha", "code_sha", "verdict", "created", "result"]


@pytest.mark.slow
def test_real_evaluations_through_the_cache(tmp_path):
    """The sandboxed evaluator behind the cache: the second request is served, and a candidate
    that tries to write the cache file from inside the sandbox changes nothing in it."""
    path = tmp_path / "cache" / "evals.sqlite"
    cache = EvalCache(path)
    task = EXAMPLES / "relu_task.py"
    honest = tmp_path / "honest.py"
    honest.write_text((EXAMPLES / "relu_copy.py").read_text())
    cfg = EvalConfig(trials=2, rounds=5, max_timing_s=5, quality_seeds=2)
    cached = CachedEvaluator(cache, need=Need.verdict(max_measurements=1))
    first = cached(task, honest, cfg)
    assert first["correct"] and cached.measured == 1, (first["verdict"], first.get("reason"))
    second = cached(task, honest, cfg)
    assert cached.measured == 1 and second["speedup"] == first["speedup"]
    hostile = tmp_path / "hostile.py"
    hostile.write_text(f"open({str(path)!r}, 'ab').write(b'x' * 100)\n" + honest.read_text())
    cached(task, hostile, cfg)
    assert cache.stats()["candidates"] == 2 and b"x" * 100 not in path.read_bytes()


def test_a_resumed_session_measures_its_repeats_afresh(tmp_path, files):
    """A search resumed in a new process re-measures a candidate it measured before the
    restart: `remember` carries the session's repeats over (without it the cache served the
    first process's measurement as the confirmation)."""
    fn = Counting(timed(2.0, 1.9, 2.1), timed(1.8, 1.7, 1.9))
    CachedEvaluator(EvalCache(tmp_path / "c.sqlite"), fn, fresh_on_repeat=True)(*files, EvalConfig())
    forgetful = CachedEvaluator(EvalCache(tmp_path / "c.sqlite"), fn, fresh_on_repeat=True)
    assert forgetful(*files, EvalConfig())["speedup"] == 2.0 and len(fn.calls) == 1  # served: a new session
    resumed = CachedEvaluator(EvalCache(tmp_path / "c.sqlite"), fn, fresh_on_repeat=True)
    task, sol = files
    resumed.remember(task, [sol.read_text()])
    again = resumed(*files, EvalConfig())
    assert len(fn.calls) == 2 and again["speedup"] == 1.8
    assert again["checks"]["cache"] == {"measurements": 2, "measured_now": True, "repeat": True}
