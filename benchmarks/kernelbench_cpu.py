"""Where does the built-in `rules` proposer stand on KernelBench level-2-style CPU tasks?

For each task in `benchmarks/examples/level2_cpu/` (or --tasks DIR), in KernelBench format,
this prints one markdown table row with:
- rules: the best verified speedup of a real `kopt optimize --model rules --budget N` run
  (`run_optimize`, the sandboxed evaluator, default thread count), and what each proposed
  candidate measured;
- bound: time of the whole eager forward over the time of its GEMM/conv modules alone
  (nn.Linear / nn.Conv* / nn.ConvTranspose*, called on the inputs they saw), i.e. the
  speedup if everything after the GEMM/conv were free;
- torch.compile: the speedup of `torch.compile(Model)` over eager (inductor, CPU), or
  `n/a (ErrorClass)` when it fails here.
The in-process timings use the evaluator's thread count and malloc settings, fresh inputs
from `get_inputs()` cycled per call, eager / GEMM-only / compiled interleaved in rounds,
median of the rounds; with one thread the clock is the thread's CPU time (steady on a
loaded machine), else wall time.

    python benchmarks/kernelbench_cpu.py [--tasks DIR] [--only a,b] [--budget 4] [--no-compile]
                                         [--json OUT]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TASKS = HERE / "examples" / "level2_cpu"
# what the evaluator gives its workers (sandboxes/evaluator.py): same allocator behaviour
ENV = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(256 << 20),
       "OMP_WAIT_POLICY": "PASSIVE", "TORCHINDUCTOR_COMPILE_THREADS": "1"}


def eval_threads() -> int:
    """The evaluator's default: half the cores, at most 8."""
    return max(1, min(8, len(os.sched_getaffinity(0)) // 2))


def load(path: Path):
    spec = importlib.util.spec_from_file_location(f"task_{path.stem}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def gemm_modules(model):
    import torch.nn as nn

    kinds = (nn.Linear, nn.Bilinear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
             nn.ConvTranspose3d)
    return [m for m in model.modules() if isinstance(m, kinds)]


def captured_calls(model, inputs):
    """(module, args) for each GEMM/conv module call during one forward."""
    import torch

    calls, hooks = [], []
    for m in gemm_modules(model):
        hooks.append(m.register_forward_pre_hook(lambda mod, args: calls.append((mod, args))))
    with torch.no_grad():
        model(*inputs)
    for h in hooks:
        h.remove()
    return calls


def clock():
    return time.thread_time if eval_threads() == 1 else time.perf_counter


def time_in_process(task, compile_too: bool, rounds: int = 15, target_s: float = 0.05) -> dict:
    import torch

    now = clock()
    torch.set_num_threads(eval_threads())
    torch.manual_seed(42)
    model = task.Model(*task.get_init_inputs())
    sets = []
    for seed in range(8):
        torch.manual_seed(seed)
        sets.append(list(task.get_inputs()))
    gemm_sets = [captured_calls(model, s) for s in sets]
    fns = {"eager": lambda i: model(*sets[i])}
    if gemm_sets[0]:
        fns["gemm"] = lambda i: [m(*a) for m, a in gemm_sets[i]]
    out = {"compile": None}
    if compile_too:
        try:
            compiled = torch.compile(model)
            with torch.no_grad():
                for s in sets[:2]:
                    y = compiled(*s)
                torch.testing.assert_close(y, model(*sets[1]), atol=1e-4, rtol=1e-4)
            fns["compiled"] = lambda i: compiled(*sets[i])
        except Exception as e:  # noqa: BLE001 - any failure is reported, not fatal
            out["compile"] = f"n/a ({type(e).__name__})"
    with torch.no_grad():
        for f in fns.values():  # warm-up and per-call estimate
            for i in range(len(sets)):
                f(i)
        t0 = now()
        for i in range(len(sets)):
            fns["eager"](i)
        per_call = (now() - t0) / len(sets)
        calls = max(len(sets), int(target_s / max(per_call, 1e-6)))
        samples = {k: [] for k in fns}
        for r in range(rounds):
            for name in (list(fns) if r % 2 == 0 else list(fns)[::-1]):
                f = fns[name]
                t0 = now()
                for c in range(calls):
                    f(c % len(sets))
                samples[name].append((now() - t0) / calls)
    med = {k: statistics.median(v) for k, v in samples.items()}
    out["eager_ms"] = med["eager"] * 1000
    out["bound"] = med["eager"] / med["gemm"] if "gemm" in med else None
    if "compiled" in med:
        out["compile"] = f"{med['eager'] / med['compiled']:.2f}x"
    return out


def rules_run(path: Path, budget: int, run_root: Path) -> dict:
    from kopt.agent.optimize import run_optimize
    from kopt.agent.store import Store

    run_dir = run_root / path.stem
    summary = run_optimize(path, model="rules", budget=budget, run_dir=run_dir, quiet=True)
    store = Store.open_run_dir(run_dir)
    try:
        cands = {c.id: c for c in store.candidates()}
        results: dict[str, list[dict]] = {}
        for e in store.evaluations():
            results.setdefault(e.candidate_id, []).append(e.result)
    finally:
        store.close()
    proposed = []
    for cid, cand in cands.items():
        if not cand.parent_ids:
            continue
        rs = results.get(cid, [])
        sp = [r["speedup"] for r in rs if r.get("speedup")]
        what = "norm" if "_run_norm" in cand.code else "elementwise"
        verdicts = "/".join(dict.fromkeys(r.get("verdict") or "?" for r in rs)) or "not evaluated"
        proposed.append(f"{what}: " + (f"{statistics.fmean(sp):.2f}x " if sp else "") + verdicts)
    best_is_proposed = bool(summary.get("best") and cands[summary["best"]].parent_ids)
    return {"best": summary.get("best_speedup") if best_is_proposed else None, "proposed": proposed}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", type=Path, default=TASKS)
    ap.add_argument("--only", default="", help="comma-separated task names (file stems)")
    ap.add_argument("--budget", type=int, default=4)
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    ap.add_argument("--no-rules", action="store_true", help="skip the rules runs (in-process numbers only)")
    ap.add_argument("--json", type=Path, help="also write the rows here")
    args = ap.parse_args(argv)
    if any(os.environ.get(k) != v for k, v in ENV.items()):  # allocator settings apply at process start
        os.environ.update(ENV)
        os.execv(sys.executable, [sys.executable, *sys.argv])
    only = {s for s in args.only.split(",") if s}
    paths = sorted(p for p in args.tasks.glob("*.py") if not only or p.stem in only)
    if not paths:
        print(f"no tasks in {args.tasks}", file=sys.stderr)
        return 2
    print(f"{len(paths)} task(s), {eval_threads()} thread(s) per side, rules budget {args.budget}, in-process "
          f"clock: {'thread CPU time' if clock() is time.thread_time else 'wall'}\n")
    print("| task | eager ms | bound (whole / GEMM-conv) | rules: best verified | rules: candidates "
          "| torch.compile |")
    print("|---|---|---|---|---|---|", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="kopt-kb-cpu-") as tmp:
        for path in paths:
            timing = time_in_process(load(path), not args.no_compile)
            rules = {"best": None, "proposed": ["skipped"]} if args.no_rules else \
                rules_run(path, args.budget, Path(tmp))
            row = {"task": path.stem, **timing, **rules}
            rows.append(row)
            bound = f"{row['bound']:.2f}x" if row["bound"] else "n/a"
            best = f"{row['best']:.2f}x" if row["best"] else "none (reference kept)"
            print(f"| {path.stem} | {row['eager_ms']:.2f} | {bound} | {best} | {'; '.join(row['proposed']) or '-'} "
                  f"| {row['compile'] or 'skipped'} |", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
