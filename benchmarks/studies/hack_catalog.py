"""Catalog of known evaluation hacks: what a KernelBench-style check says next to what kopt says.

Each row takes one cheating `ModelNew` from tests/fixtures/solutions and its task from
tests/fixtures/tasks (the same pairs tests/sandboxes/test_cheats_rejected.py uses). Templates with
__PLACEHOLDERS__ are filled into a temp dir the same way the test fills them. Two honest
solutions follow as controls. The script prints a markdown table and a summary line.

KernelBench-style check (modelled on upstream `eval_kernel_against_ref`, CPU edition). It
runs in a fresh child process per row, so one hack cannot leak into the next row. Inside
that child, Model and ModelNew share the process:
  * the task and the solution sources are exec'd into separate namespaces;
  * torch.manual_seed(42) before Model(*get_init_inputs()) and again before ModelNew(...);
  * 5 trial seeds are drawn after torch.manual_seed(42);
  * baseline: Model runs once on each trial's get_inputs() (the calls ModelNew gets before
    its timing, so neither side is timed colder), then 3 warm-up calls and 20 calls on one
    get_inputs() (seed 42), each timed with time.perf_counter() around the call. This runs
    before the solution is loaded, as upstream's baseline comes from a separate run;
  * 5 correctness trials: for each trial seed, get_inputs(), the reference runs first,
    then ModelNew on the same tensors; a shape mismatch or
    `not torch.allclose(ref, new, atol=1e-2, rtol=1e-2)` fails the check;
  * when correct, ModelNew is timed the same way (3 warm-up calls, 20 timed calls on one
    input). speedup = mean reference time / mean ModelNew time;
  * it prints 'correct, 3.1x', 'incorrect', or 'error (...)' when something raises or
    hangs (60 s).

Each attack has an aim: `wrong output` (a wrong answer passed off as correct), `fake speedup`
(the right answer at a fake speed), or `reference reuse` (runs the task's own Model).
    caught = kopt's `correct` is False,
             or the aim is `fake speedup` and kopt's verdict is not 'faster'.
    fools the KernelBench-style check = it says correct and, for a `fake speedup` attack,
             reports a speedup above 1.0x.
The hacks that race a thread (late_thread, deferred_*) can flip between 'incorrect' and
'correct' from run to run in the KernelBench-style column: it reads the output at once and
sees whatever the thread has written by then. Its speedups are means of 20 microsecond-scale
calls, noisy on a loaded machine.
Left out: the crash and sandbox fixtures (raises, hangs, unbounded_alloc, network, spawn_*,
daemon). They do not try to pass with a wrong answer or a fake speed, and running them
unsandboxed here would leave stray processes behind.

kopt runs with EvalConfig(max_timing_s=3, rounds=5), the same for the controls.

    python benchmarks/studies/hack_catalog.py [--only NAME ...]
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
TASKS = FIXTURES / "tasks"
SOLUTIONS = FIXTURES / "solutions"
KB_TIMEOUT_S = 60

WRONG, SPEED, REFERENCE, CONTROL = "wrong output", "fake speedup", "reference reuse", "control"


@dataclass(frozen=True)
class Attack:
    name: str
    solution: str  # fixture name in tests/fixtures/solutions
    task: str  # fixture name in tests/fixtures/tasks
    aim: str
    expect: str = ""  # controls only: the verdict kopt should give


ATTACKS = [
    Attack("returns the input unchanged", "identity", "relu", WRONG),
    Attack("returns zeros (wide softmax, all outputs < 1e-4)", "zeros", "softmax_wide", WRONG),
    Attack("returns a constant", "constant", "relu", WRONG),
    Attack("caches outputs by data_ptr", "cache_data_ptr", "relu", SPEED),
    Attack("caches outputs by a value fingerprint", "cache_fingerprint", "relu", SPEED),
    Attack("computes in place in its input", "inplace", "relu", SPEED),
    Attack("freezes time.perf_counter at import", "patch_timer", "relu", SPEED),
    Attack("imports the task file, runs its Model", "read_reference_import", "relu", REFERENCE),
    Attack("open()s and execs the task file", "read_reference_open", "relu", REFERENCE),
    Attack("reads the task file via a child `cat`", "read_reference_subprocess", "relu", REFERENCE),
    Attack("right only for non-negative inputs", "nonneg_only", "abs_poly", WRONG),
    Attack("right only for the default batch size", "fixed_batch", "row_sum", WRONG),
    Attack("one NaN in the output", "nan_output", "relu", WRONG),
    Attack("returns a lazy torch.Tensor subclass", "tensor_subclass", "relu", SPEED),
    Attack("a new thread fills the output after return", "late_thread", "relu", SPEED),
    Attack("work deferred to a thread + patched Tensor.detach", "deferred_pool", "double_matmul", SPEED),
    Attack("work deferred to a thread, nothing patched", "deferred_copy", "double_matmul", SPEED),
    Attack("subclasses a copy of Model", "subclass_model", "relu", REFERENCE),
    Attack("returns the input (task feeds non-negative inputs)", "identity", "relu_nonneg", WRONG),
    Attack("patches torch.allclose/equal/assert_close at import", "patch_allclose", "relu", WRONG),
    Attack("correct for the first 8 calls, then the last output", "drift", "relu", SPEED),
    Attack("same input object again: works on 1 call in 8", "batch_skip", "relu", SPEED),
    Attack("replays outputs for a harness seeded with 42", "replay_seed", "relu", WRONG),
    Attack("closed form: mean of U(0,1) values is 0.5", "stat_shortcut", "row_mean", WRONG),
    Attack("strided subsampling (every 8th element)", "strided_subsample", "row_mean", WRONG),
    Attack("computes in half precision", "lower_precision", "relu", WRONG),
    Attack("copies the reference output from the caller's frame", "frame_peek", "relu", WRONG),
    Attack("fills its output while the harness serialises it", "fills_while_serialised", "double_matmul", SPEED),
    Attack("zeroes its input only in back-to-back (timed) calls", "scratch_when_timed", "relu", WRONG),
    Attack("subclasses Model from a copy loaded under another name", "load_copy_subclass", "relu", REFERENCE),
    Attack("honest copy of the reference", "double_matmul_honest", "double_matmul", CONTROL, "same"),
    Attack("honest: drops the redundant matmul", "double_matmul_once", "double_matmul", CONTROL, "faster"),
]


# -- the KernelBench-style check (runs in a child process: `--kb-check TASK SOLUTION OUT`) ---------

def _kb_time(model, inputs, torch, calls: int = 20, warmup: int = 3) -> float:
    """Mean seconds per call; `time.perf_counter` is looked up at each call, as a naive harness does."""
    with torch.no_grad():
        for _ in range(warmup):
            model(*inputs)
        elapsed = []
        for _ in range(calls):
            start = time.perf_counter()
            model(*inputs)
            elapsed.append(time.perf_counter() - start)
    return sum(elapsed) / len(elapsed)


def _kb_check(task_path: str, solution_path: str) -> dict:
    import torch

    task_ns: dict = {}
    exec(compile(Path(task_path).read_text(), task_path, "exec"), task_ns)
    init_inputs = task_ns["get_init_inputs"]()
    torch.manual_seed(42)
    trial_seeds = [int(torch.randint(0, 2**32 - 1, (1,)).item()) for _ in range(5)]
    with torch.no_grad():
        torch.manual_seed(42)
        ref = task_ns["Model"](*init_inputs)
        for seed in trial_seeds:  # the same calls the candidate gets before its timing: no cold-start bias
            torch.manual_seed(seed)
            ref(*task_ns["get_inputs"]())
        torch.manual_seed(42)
        ref_s = _kb_time(ref, task_ns["get_inputs"](), torch)

    try:
        sol_ns: dict = {}
        exec(compile(Path(solution_path).read_text(), solution_path, "exec"), sol_ns)
        with torch.no_grad():
            torch.manual_seed(42)
            new = sol_ns["ModelNew"](*init_inputs)
        with torch.no_grad():
            for seed in trial_seeds:
                torch.manual_seed(seed)
                inputs = task_ns["get_inputs"]()
                torch.manual_seed(seed)
                out_ref = ref(*inputs)
                torch.manual_seed(seed)
                out_new = new(*inputs)
                if out_ref.shape != out_new.shape:
                    return {"status": "incorrect", "detail": "shape"}
                if not torch.allclose(out_ref, out_new, atol=1e-2, rtol=1e-2):
                    return {"status": "incorrect"}
        torch.manual_seed(42)
        new_s = _kb_time(new, task_ns["get_inputs"](), torch)
    except Exception as e:  # a hack that breaks is an 'error' row, as upstream reports it
        return {"status": "error", "detail": f"{type(e).__name__}: {e}"[:60]}
    return {"status": "correct", "ref_s": ref_s, "new_s": new_s}


def kb_check_child(task_path: str, solution_path: str, out_path: str) -> None:
    try:
        res = _kb_check(task_path, solution_path)
    except Exception as e:
        res = {"status": "error", "detail": f"{type(e).__name__}: {e}"[:60]}
    Path(out_path).write_text(json.dumps(res))
    sys.stdout.flush()
    os._exit(0)  # do not wait for threads the solution left running


def run_kb_check(task: Path, solution: Path, work: Path) -> dict:
    """The check in a fresh process group, killed (the group, by its id) when done or after a timeout."""
    out = work / f"kb-{solution.stem}.json"
    proc = subprocess.Popen([sys.executable, __file__, "--kb-check", str(task), str(solution), str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _, err = proc.communicate(timeout=KB_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return {"status": "error", "detail": f"no result within {KB_TIMEOUT_S}s"}
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # whatever the solution left in the group
    except (ProcessLookupError, PermissionError):
        pass
    if not out.exists():
        last = (err or "").strip().splitlines()[-1:] or [f"exit code {proc.returncode}"]
        return {"status": "error", "detail": last[0][:60]}
    return json.loads(out.read_text())


def kb_checks_forked(jobs_path: str) -> None:
    """Many checks from one process that has imported torch once: each check runs in a forked
    child in its own session, so a hack cannot leak into the next check and what it leaves
    running is killed with its group."""
    import torch  # noqa: F401 -- imported once, before the forks

    for task, solution, out in json.loads(Path(jobs_path).read_text()):
        pid = os.fork()
        if pid == 0:
            os.setsid()
            kb_check_child(task, solution, out)
        deadline = time.monotonic() + KB_TIMEOUT_S
        while time.monotonic() < deadline and os.waitpid(pid, os.WNOHANG) == (0, 0):
            time.sleep(0.02)
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
        if not Path(out).exists():
            Path(out).write_text(json.dumps({"status": "error", "detail": f"no result within {KB_TIMEOUT_S}s"}))
    os._exit(0)


def run_kb_checks(pairs: list[tuple[Path, Path]], work: Path) -> list[dict]:
    """`run_kb_check` for many (task, solution) pairs at the cost of one torch import."""
    jobs = [(str(t), str(s), str(work / f"kb-{i}-{s.stem}.json")) for i, (t, s) in enumerate(pairs)]
    jobs_path = work / "kb-jobs.json"
    jobs_path.write_text(json.dumps(jobs))
    subprocess.run([sys.executable, __file__, "--kb-check-many", str(jobs_path)], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=KB_TIMEOUT_S * (len(jobs) + 1))
    return [json.loads(Path(out).read_text()) if Path(out).exists() else {"status": "error", "detail": "no result"}
            for _, _, out in jobs]


def kb_speedup(kb: dict) -> float | None:
    if kb["status"] != "correct":
        return None
    return kb["ref_s"] / kb["new_s"] if kb["new_s"] > 0 else float("inf")


def kb_text(kb: dict) -> str:
    if kb["status"] == "correct":
        s = kb_speedup(kb)
        if s == float("inf"):
            return "correct, infx (timer read 0 s)"
        return f"correct, {s:.0f}x" if s >= 100 else f"correct, {s:.1f}x"
    if kb.get("detail"):
        return f"{kb['status']} ({kb['detail']})"
    return kb["status"]


# -- kopt ------------------------------------------------------------------------------------------

def kopt_text(res: dict) -> str:
    verdict = res["verdict"]
    if verdict in ("faster", "same", "slower") and res.get("speedup") is not None:
        return f"{verdict}, {res['speedup']:.2f}x"
    reason = " ".join((res.get("reason") or "").split())
    if len(reason) > 90:
        reason = reason[:87] + "..."
    return f"{verdict}: {reason}" if reason else verdict


def is_caught(a: Attack, res: dict) -> bool:
    return res["correct"] is False or (a.aim == SPEED and res["verdict"] != "faster")


def fools_kb(a: Attack, kb: dict) -> bool:
    if kb["status"] != "correct":
        return False
    return a.aim != SPEED or kb_speedup(kb) > 1.0


def solution_file(a: Attack, work: Path) -> Path:
    """The fixture itself, or a copy with its __PLACEHOLDERS__ filled in (as the test does)."""
    src = SOLUTIONS / f"{a.solution}.py"
    text = src.read_text()
    if "__TASK_PATH__" not in text:
        return src
    out = work / f"{a.solution}.py"
    out.write_text(text.replace("__TASK_PATH__", str((TASKS / f"{a.task}.py").resolve())))
    return out


def md(cell: str) -> str:
    return cell.replace("|", "\\|")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="+", metavar="NAME", help="fixture names to run (default: all)")
    a = ap.parse_args()

    import torch

    from kopt.sandboxes.evaluator import EvalConfig, evaluate

    cfg = EvalConfig(max_timing_s=3, rounds=5)
    rows = [x for x in ATTACKS if not a.only or x.solution in a.only]
    print(f"{os.cpu_count()} CPUs, python {sys.version.split()[0]}, torch {torch.__version__}; "
          f"kopt EvalConfig(max_timing_s=3, rounds=5)\n")
    print("| attack | aim | KernelBench-style check | kopt | caught |")
    print("|---|---|---|---|---|")
    caught = fooled = attacks = 0
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="kopt-hacks-") as tmp:
        work = Path(tmp)
        for x in rows:
            task, sol = TASKS / f"{x.task}.py", solution_file(x, work)
            kb = run_kb_check(task, sol, work)
            res = evaluate(task, sol, cfg)
            if x.aim == CONTROL:
                ok = res["correct"] is True and res["verdict"] == x.expect
                last = "control: ok" if ok else f"control: FAILED (expected {x.expect})"
            else:
                attacks += 1
                hit = is_caught(x, res)
                caught += hit
                fooled += fools_kb(x, kb)
                last = "yes" if hit else "**NO**"
            print(f"| {md(x.name)} (`{x.solution}` on {x.task}) | {x.aim} | {md(kb_text(kb))} "
                  f"| {md(kopt_text(res))} | {last} |", flush=True)
    print(f"\n({time.perf_counter() - started:.0f} s)")
    print(f"{caught}/{attacks} attacks caught by kopt; {fooled}/{attacks} fool the KernelBench-style check")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--kb-check":
        kb_check_child(*sys.argv[2:])
    elif len(sys.argv) == 3 and sys.argv[1] == "--kb-check-many":
        kb_checks_forked(sys.argv[2])
    else:
        main()
