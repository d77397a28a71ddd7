"""Where does the built-in `rules` proposer stand on KernelBench level-2-style CPU tasks?

A `kopt bench` of `benchmarks/examples/level2_cpu/` (or --tasks DIR) with `--model rules`,
through the same library functions (`run_bench`: --fit auto, sandboxed evaluator, per-task
run dirs, fast_p), then one markdown row per task:
- sizes: what `--fit auto` changed to fit this machine ("as written" if nothing);
- eager ms: the reference's time per call, measured by the evaluator;
- rules: the verified speedup of the rules' candidate (one-shot by default: the first
  rule that applies, evaluated once; the reference itself never counts), and what each
  proposed candidate measured;
- bound: the whole eager forward over its GEMM/conv modules alone (nn.Linear / nn.Conv*,
  called on the inputs they saw), i.e. the speedup if everything after them were free --
  timed in-process, interleaved rounds, median;
- torch.compile: the bench's compile baseline (with --compile; slow on a CPU).
The fast_p summary of the bench follows the table.

    python benchmarks/studies/kernelbench_cpu.py [--tasks DIR] [--only a,b] [--budget 1] [--compile]
                                         [--run-dir D] [--json OUT]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]  # benchmarks/
TASKS = HERE / "examples" / "level2_cpu"


def gemm_bound(task_file: Path, threads: int, rounds: int = 9, target_s: float = 0.03) -> float | None:
    """eager forward time over the time of its GEMM/conv module calls alone."""
    import torch
    import torch.nn as nn

    from kopt.agent.targets.kernelbench.size_probe import load_source

    mod = load_source(task_file.read_text(), str(task_file))
    torch.set_num_threads(threads)
    torch.manual_seed(42)
    model = mod.Model(*mod.get_init_inputs())
    kinds = (nn.Linear, nn.Bilinear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
             nn.ConvTranspose3d)
    sets, calls = [], []
    for seed in range(4):
        torch.manual_seed(seed)
        sets.append(list(mod.get_inputs()))
    hooks = [m.register_forward_pre_hook(lambda m, a: calls.append((m, a))) for m in model.modules()
             if isinstance(m, kinds)]
    with torch.no_grad():
        for s in sets:
            model(*s)
    for h in hooks:
        h.remove()
    if not calls:
        return None
    per_set = len(calls) // len(sets)
    fns = {"eager": lambda i: model(*sets[i]),
           "gemm": lambda i: [m(*a) for m, a in calls[i * per_set:(i + 1) * per_set]]}
    samples: dict[str, list[float]] = {k: [] for k in fns}
    with torch.no_grad():
        t0 = time.perf_counter()
        fns["eager"](0)
        n = max(len(sets), int(target_s / max(time.perf_counter() - t0, 1e-6)))
        for r in range(rounds):
            for name in (list(fns) if r % 2 == 0 else list(fns)[::-1]):
                t0 = time.perf_counter()
                for c in range(n):
                    fns[name](c % len(sets))
                samples[name].append((time.perf_counter() - t0) / n)
    return statistics.median(samples["eager"]) / statistics.median(samples["gemm"])


def candidates(task_dir: Path) -> list[str]:
    """What each rules candidate measured, e.g. 'norm: 1.85x faster/same'."""
    from kopt.agent.runs.store import Store

    store = Store.open_run_dir(task_dir)
    try:
        results: dict[str, list[dict]] = {}
        for e in store.evaluations():
            results.setdefault(e.candidate_id, []).append(e.result)
        out = []
        for c in store.candidates():
            if not c.parent_ids:
                continue
            rs = results.get(c.id, [])
            sp = [r["speedup"] for r in rs if r.get("speedup")]
            what = "norm" if "_run_norm" in c.code else "elementwise"
            verdicts = "/".join(dict.fromkeys(r.get("verdict") or "?" for r in rs)) or "not evaluated"
            out.append(f"{what}: " + (f"{statistics.fmean(sp):.2f}x " if sp else "") + verdicts)
        return out
    finally:
        store.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", type=Path, default=TASKS)
    ap.add_argument("--only", default="", help="comma-separated task names (file stems)")
    ap.add_argument("--budget", type=int, default=1,
                    help="evaluations per task: 1 = one-shot (each rule's first candidate); N > 1 runs the search")
    ap.add_argument("--compile", action="store_true", help="add the torch.compile baseline (slow on a CPU)")
    ap.add_argument("--run-dir", type=Path, help="keep the bench here (default: a temporary folder)")
    ap.add_argument("--json", type=Path, help="also write the rows here")
    args = ap.parse_args(argv)

    from kopt.agent.errors import KoptError
    from kopt.agent.targets.kernelbench.size_probe import default_threads
    from kopt.benchmarks.bench_report import PS
    from kopt.benchmarks.bench_runner import BenchConfig, load_results, run_bench

    cfg = BenchConfig(suite=str(args.tasks), tasks=args.only or None, model="rules", budget=args.budget,
                      baselines=["eager", "compile"] if args.compile else ["eager"])
    with tempfile.TemporaryDirectory(prefix="kopt-kb-cpu-") as tmp:
        bench_dir = args.run_dir or Path(tmp) / "bench"
        started = time.time()
        try:
            summary = run_bench(cfg, bench_dir)
        except KoptError as e:
            print(f"kernelbench_cpu: {e}", file=sys.stderr)
            return 2
        wall = time.time() - started
        load = os.getloadavg()[0]
        print(f"{summary['total']} task(s), rules budget {args.budget}, {default_threads()} thread(s) per side, "
              f"--fit auto; bench wall time {wall:.0f}s (load average {load:.1f} on {os.cpu_count()} cores)\n")
        print("| task | sizes | eager ms | bound (whole / GEMM-conv) | rules: best verified | rules: candidates "
              "| torch.compile |")
        print("|---|---|---|---|---|---|---|")
        rows = []
        for r in load_results(bench_dir):
            d = bench_dir / "tasks" / r["id"]
            sizes = ", ".join(f"{k} {a}->{b}" for k, (a, b) in ((r.get("fit") or {}).get("sizes") or {}).items())
            eager = ((r.get("baselines") or {}).get("eager") or {}).get("ms")
            bound = gemm_bound(Path(r["task_file"]), default_threads()) if r.get("task_file") else None
            comp = (r.get("baselines") or {}).get("compile")
            if comp is None:
                comp_text = "not run"
            elif comp.get("skipped"):
                comp_text = f"n/a ({comp['skipped'][:60]})"
            else:
                comp_text = f"{comp['speedup']:.2f}x" if comp.get("correct") else "incorrect"
            best = f"{r['speedup']:.2f}x" if r.get("correct") else \
                ("none (reference kept)" if r.get("status") == "done" else f"{r['status']}: {r.get('reason')}")
            cands = candidates(d) if (d / "run.sqlite").exists() else []
            rows.append({**r, "bound": bound})
            print(f"| {r['name']} | {sizes or 'as written'} | {f'{eager:.2f}' if eager else '-'} | "
                  f"{f'{bound:.2f}x' if bound else 'n/a'} | {best} | {'; '.join(cands) or '-'} | {comp_text} |",
                  flush=True)
        m = summary["metrics"]["all"]
        fast = ", ".join(f"fast_{p:g} {100 * (m['fast_p'][f'{p:g}'] or 0):.0f}%" for p in PS)
        geo = f"{m['geomean_speedup']:.2f}x" if m["geomean_speedup"] else "-"
        print(f"\nfast_p over {m['scored']} scored task(s) ({m['degenerate_excluded']} degenerate excluded, "
              f"{m['skipped']} skipped): {fast}; geomean speedup of correct tasks {geo}")
        if args.json:
            args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
