"""Adversarial tests for `kopt eval`: solutions that cheat or break must never come out correct.

Each test evaluates one hostile or broken `ModelNew` from tests/fixtures/solutions against a
small task from tests/fixtures/tasks and pins the verdict and what the reason names. Two
honest solutions are the positive controls. Every call must return the `kopt eval --json`
dict: a misbehaving solution is a verdict, never an exception in kopt.
"""
from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from kopt.sandboxes.evaluator import EvalConfig, evaluate  # noqa: E402
from tests.support.listener import Listener  # noqa: E402

FIXTURES = Path(__file__).parents[1] / "fixtures"
TASKS = FIXTURES / "tasks"
SOLUTIONS = FIXTURES / "solutions"

# Small budgets: most attacks end in the correctness trials; those that reach timing stay short.
FAST = {"max_timing_s": 3, "rounds": 5, "call_timeout_s": 30, "setup_timeout_s": 120}
VERDICTS = {"faster", "same", "slower", "incorrect", "compile_error", "runtime_error", "timeout",
            "rejected", "unverified"}
CONTRACT_KEYS = {"task", "solution", "device", "compiled", "correct", "speedup", "speedup_ci", "checks",
                 "verdict", "kernel"}
VALUES_WRONG = ("values differ", "relative error")


def run_eval(task: str, solution: str | Path, **cfg) -> dict:
    """evaluate() on fixture names; checks the result is a well-formed contract dict."""
    sol = solution if isinstance(solution, Path) else SOLUTIONS / f"{solution}.py"
    res = evaluate(TASKS / f"{task}.py", sol, EvalConfig(**{**FAST, **cfg}))
    assert isinstance(res, dict)
    assert CONTRACT_KEYS <= res.keys(), f"missing keys: {CONTRACT_KEYS - res.keys()}"
    assert res["verdict"] in VERDICTS, res
    if res["verdict"] not in ("faster", "same", "slower"):
        assert res.get("reason"), f"a {res['verdict']} verdict needs a reason: {res}"
    return res


def assert_caught(res: dict, verdict: str | tuple[str, ...], *any_of: str) -> None:
    """Not correct, the expected verdict, and a reason naming at least one of `any_of`."""
    verdicts = (verdict,) if isinstance(verdict, str) else verdict
    summary = f"verdict={res['verdict']!r} reason={res.get('reason')!r}"
    assert res["correct"] is False, summary
    assert res["verdict"] in verdicts, summary
    if any_of:
        reason = res.get("reason") or ""
        assert any(w.lower() in reason.lower() for w in any_of), summary


def from_template(tmp_path: Path, name: str, **subs: object) -> Path:
    """A copy of a fixture solution with its __PLACEHOLDERS__ filled in."""
    text = (SOLUTIONS / f"{name}.py").read_text()
    for key, value in subs.items():
        text = text.replace(f"__{key}__", str(value))
    out = tmp_path / f"{name}.py"
    out.write_text(text)
    return out


def load_task_module(task: str):
    spec = importlib.util.spec_from_file_location(f"cheat_task_{task}", TASKS / f"{task}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- positive controls ---------------------------------------------------------------------------

def test_honest_copy_is_correct_and_same():
    res = run_eval("double_matmul", "double_matmul_honest", rounds=7, max_timing_s=4)
    assert res["compiled"] is True and res["correct"] is True, res
    assert res["verdict"] == "same", res
    assert res["checks"]["trials"] >= 5 and res["checks"]["shapes"] >= 2, res["checks"]


def test_dropping_redundant_work_is_faster():
    res = run_eval("double_matmul", "double_matmul_once", rounds=9, max_timing_s=5)
    assert res["correct"] is True, res
    assert res["verdict"] == "faster", res
    assert res["speedup_ci"][0] > 1.1, res


# -- wrong answers -------------------------------------------------------------------------------

def test_returns_input_unchanged():
    assert_caught(run_eval("relu", "identity"), "incorrect", *VALUES_WRONG)


def test_returns_zeros_where_allclose_alone_would_pass():
    task = load_task_module("softmax_wide")
    torch.manual_seed(0)
    (x,) = task.get_inputs()
    ref = task.Model()(x)
    assert torch.allclose(torch.zeros_like(ref), ref, atol=1e-4, rtol=1e-4)  # the trap is real
    assert_caught(run_eval("softmax_wide", "zeros"), "incorrect", "relative error")


def test_returns_a_constant():
    assert_caught(run_eval("relu", "constant"), "incorrect", *VALUES_WRONG)


def test_caches_outputs_by_data_ptr():
    """Only right while the caller never reuses an input buffer for new values."""
    assert_caught(run_eval("relu", "cache_data_ptr"), "incorrect", *VALUES_WRONG)


def test_caches_outputs_by_cheap_value_fingerprint():
    """Eight possible keys: the trials plus the timed calls (all checked) must hit a stale entry."""
    assert_caught(run_eval("relu", "cache_fingerprint"), "incorrect", *VALUES_WRONG)


def test_modifies_its_input_in_place():
    assert_caught(run_eval("relu", "inplace"), "incorrect", "modified in place")


def test_right_only_for_non_negative_inputs():
    assert_caught(run_eval("abs_poly", "nonneg_only"), "incorrect", "signed")


def test_right_only_for_the_default_shape():
    assert_caught(run_eval("row_sum", "fixed_batch"), "incorrect", "scaled-shape")


def test_returns_nan():
    assert_caught(run_eval("relu", "nan_output"), "incorrect", "NaN")


# -- crashes and resource abuse ------------------------------------------------------------------

def test_raises_in_forward():
    assert_caught(run_eval("relu", "raises"), "runtime_error", "kopt-test-marker")


def test_hangs_in_forward():
    started = time.monotonic()
    res = run_eval("relu", "hangs", call_timeout_s=5)
    assert_caught(res, "timeout", "within 5s")
    assert time.monotonic() - started < 60


def test_allocates_without_bound():
    assert_caught(run_eval("relu", "unbounded_alloc", memory_mb=3000), "runtime_error", "memory")


# -- forbidden behaviour -------------------------------------------------------------------------

def test_patches_the_timer():
    assert_caught(run_eval("relu", "patch_timer"), "rejected", "perf_counter")


@pytest.mark.parametrize("how", ["read_reference_import", "read_reference_open", "read_reference_subprocess"])
def test_reads_the_reference_task(tmp_path, how):
    sol = from_template(tmp_path, how, TASK_PATH=(TASKS / "relu.py").resolve())
    if how == "read_reference_subprocess":
        # a child process escapes the audit hook; the mount namespace shows it an empty file
        assert_caught(run_eval("relu", sol), ("rejected", "runtime_error"), "reference", "Model")
    else:
        assert_caught(run_eval("relu", sol), "rejected", "reference")


def test_opens_a_network_connection(tmp_path):
    with Listener() as srv:
        res = run_eval("relu", from_template(tmp_path, "network", PORT=srv.port))
    assert_caught(res, "rejected", "network")
    assert srv.seen == [], f"the server saw connections from {srv.seen}"


@pytest.mark.parametrize("how", ["spawn_at_import", "spawn_in_forward"])
def test_spawns_a_child_process(how):
    assert_caught(run_eval("relu", how), "rejected", "process")


def _processes_named(name: str) -> list[str]:
    found = []
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() == name:
                found.append(comm.parent.name)
        except OSError:
            pass
    return found


def test_double_forked_daemon(tmp_path):
    """The daemon names itself; the test sees it alive during the evaluation (it really ran)
    and finds no process of that name once evaluate() returns (kopt killed it)."""
    import secrets
    import threading

    name = f"kdmn{secrets.token_hex(4)}"
    seen, done = [], threading.Event()

    def watch():
        while not done.is_set() and not seen:
            seen.extend(_processes_named(name))
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        res = run_eval("relu", from_template(tmp_path, "daemon", MARKER=name))
    finally:
        done.set()
        watcher.join()
    assert_caught(res, "rejected", "process")
    assert seen, "the daemon never ran: the test proves nothing"
    time.sleep(0.5)
    assert _processes_named(name) == [], "the daemon outlived the evaluation"


def test_background_thread_fills_output_after_forward():
    res = run_eval("relu", "late_thread")
    assert_caught(res, ("rejected", "incorrect"))
    if res["verdict"] == "rejected":
        assert "thread" in res["reason"], res["reason"]


def test_deferred_work_in_a_preexisting_thread_with_patched_harness():
    """The work runs in a thread made at import (no new thread after forward) and the harness's
    output serializer is wrapped to wait for it: the clock around forward sees no work."""
    assert_caught(run_eval("double_matmul", "deferred_pool"), "rejected", "harness", "dumps_tensors")


def test_subclassing_a_pasted_copy_of_model_is_an_honest_copy():
    """Issue 16: the solution's own copy of Model may be subclassed; the task's Model loaded
    from elsewhere is rejected by what its code is (tests/redteam/test_kb_reuse.py)."""
    res = run_eval("relu", "subclass_model")
    assert res["correct"] is True and res["verdict"] != "rejected", res


def test_returns_a_lazy_tensor_subclass():
    assert_caught(run_eval("relu", "tensor_subclass"), ("rejected", "incorrect"), "tensor")


def test_deferred_work_in_a_thread_without_patching():
    """No harness function patched: either the output is read unfinished, or the kernel's CPU
    accounting shows the work done between timed calls."""
    assert_caught(run_eval("double_matmul", "deferred_copy"), ("rejected", "incorrect"),
                  "outside the timed", "values differ")


def test_kernel_defined_but_never_run_counts_as_torch():
    res = run_eval("relu", "ghost_kernel")
    assert res["correct"] is True and res["kernel"] == "torch", res
    assert "never called" in res["checks"]["ghost_kernel"]


def test_speedup_above_the_sanity_cap_is_remeasured_in_fresh_processes():
    res = run_eval("double_matmul", "double_matmul_once", sanity_cap=1.2)
    assert res["correct"] is True and res["verdict"] == "faster", res
    again = res["checks"]["remeasured"]
    assert again["second"] > 1.2 and res["speedup"] == min(again["first"], again["second"])
    assert "fresh processes" in res["checks"]["suspicious"]


def test_a_faster_verdict_is_timed_again_on_a_fresh_pair_of_workers():
    """A real 2x (one matmul of two) stands only after a second pair of processes agreed."""
    res = run_eval("double_matmul", "double_matmul_once")
    again = res["checks"]["remeasured"]
    assert res["verdict"] == "faster" and again["verdicts"] == ["faster", "faster"], res
    assert res["speedup"] == min(again["first"], again["second"]) and "unconfirmed" not in res["checks"]
    plain = run_eval("double_matmul", "double_matmul_once", confirm=False)
    assert plain["verdict"] == "faster" and "remeasured" not in plain["checks"], plain


def test_right_only_for_the_seed_42_weights():
    assert_caught(run_eval("linear", "frozen_weights"), "incorrect", "re-initialised-weights")
