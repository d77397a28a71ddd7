"""Where an honest copy's speedup comes from: each timed round of a few fitted upstream tasks.

    python benchmarks/studies/copy_bias.py L1:77 L1:81 L2:19 [--runs 2] [--quick] [--json out.json]

For each task (fitted with `--fit auto`, as kernelbench_copies does), a copy of the
reference is evaluated --runs times. Besides the verdict it prints every timed round
(which side went first, each side's seconds, the ratio), the phases' wall time and the
CPU time each worker used, so a bias can be told from noise: a bias shows in every round
or in one order only, noise does not.
"""
from __future__ import annotations

import argparse
import json
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

from kopt.agent.targets.kernelbench.fit import FitConfig, fit_task
from kopt.benchmarks.studies.kernelbench_copies import DEFAULT_SUITE, QUICK, select_tasks
from kopt.sandboxes import eval_channel, eval_session, eval_timing
from kopt.sandboxes.evaluator import EvalConfig, evaluate
from kopt.sandboxes.kernelbench_tasks import reference_solution

ROUNDS: list[dict] = []
WORKER_CPU: list[dict] = []
REQUESTS: dict = {}  # (side, cmd) -> [count, wall s, worker CPU s]


def _recording_exchange(original):
    def exchange(s, seeds, label, *args, **kwargs):
        times = original(s, seeds, label, *args, **kwargs)
        if kwargs.get("timed"):
            order = kwargs.get("first", "ref") + "-first"
            ROUNDS.append({"label": label, "order": order, "ref_s": times["ref"], "new_s": times["new"],
                           "ref_cpu_s": times["ref_run_cpu"], "new_cpu_s": times["new_run_cpu"],
                           "calls": len(seeds), "checked": bool(kwargs.get("checked"))})
        return times
    return exchange


def _recording_close(original):
    def close(self):
        WORKER_CPU.append({"ref_cpu_s": self.ref.worker.cpu_seconds(), "new_cpu_s": self.new.worker.cpu_seconds()})
        return original(self)
    return close


def _recording_call(original):
    def call(self, header, *args, **kwargs):
        cpu0, wall0 = self.worker.cpu_seconds(), time.perf_counter()
        try:
            return original(self, header, *args, **kwargs)
        finally:
            row = REQUESTS.setdefault((self.role, header.get("cmd")), [0, 0.0, 0.0])
            row[0] += 1
            row[1] += time.perf_counter() - wall0
            row[2] += self.worker.cpu_seconds() - cpu0
    return call


def _instrument() -> None:
    eval_channel.Channel.call = _recording_call(eval_channel.Channel.call)
    eval_timing._exchange = _recording_exchange(eval_timing._exchange)
    eval_session._Session.close = _recording_close(eval_session._Session.close)


def one(task, work: Path, overrides: dict) -> dict:
    fit = fit_task(task.path, work, FitConfig())
    if fit.skipped:
        return {"id": task.id, "skipped": fit.skipped}
    copy = work / "copy.py"
    copy.write_text(reference_solution(fit.path.read_text()))
    ROUNDS.clear()
    REQUESTS.clear()
    WORKER_CPU.clear()
    res = evaluate(fit.path, copy, EvalConfig(**overrides))
    rounds = [r for r in ROUNDS if r["label"].startswith("timed")]
    by_order = {o: [r["ref_s"] / r["new_s"] for r in rounds if r["order"] == o] for o in ("ref-first", "new-first")}
    cpu = [r["ref_cpu_s"] / r["new_cpu_s"] for r in rounds if r["new_cpu_s"] > 0]
    return {"id": task.id, "fit": fit.sizes, "verdict": res.get("verdict"), "speedup": res.get("speedup"),
            "ci": res.get("speedup_ci"), "ref_ms": res.get("ref_ms"), "new_ms": res.get("new_ms"),
            "phase_s": res["checks"].get("phase_s"), "phase_cpu_s": res["checks"].get("phase_cpu_s"),
            "eval_s": res["checks"].get("eval_s"),
            "worker_cpu_s": WORKER_CPU[-1] if WORKER_CPU else None, "rounds": ROUNDS[:],
            "ratio_by_order": {o: round(statistics.median(v), 3) if v else None for o, v in by_order.items()},
            # the same ratio in CPU seconds (the kernel's, in clock ticks): load moves it far less than wall time
            "cpu_ratio": round(statistics.median(cpu), 3) if cpu else None,
            "reason": res.get("reason"),
            "requests": {f"{side}.{cmd}": [n, round(w, 3), round(c, 3)] for (side, cmd), (n, w, c) in
                         sorted(REQUESTS.items(), key=lambda kv: -kv[1][1])}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("tasks", nargs="+", help="LEVEL:NUMBER, e.g. L1:77 or 1:77")
    ap.add_argument("--suite", default=str(DEFAULT_SUITE))
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", default=None)
    ap.add_argument("--random-order", action="store_true",
                    help="the rule before rounds alternated: a random first caller in each timed round")
    args = ap.parse_args(argv)
    suite = Path(args.suite)
    if not suite.is_dir():
        print(f"no KernelBench checkout at {suite}: nothing to do")
        return 0
    _instrument()
    if args.random_order:
        eval_timing.first_callers = lambda rounds: [secrets.choice(("ref", "new")) for _ in range(rounds)]
    work = Path(tempfile.mkdtemp(prefix="kopt-bias-"))
    out = []
    for spec in args.tasks:
        level, number = spec.upper().lstrip("L").split(":")
        for task in select_tasks(suite, [int(level)], number):
            for run in range(args.runs):
                rec = one(task, work / f"{task.id}-{run}", QUICK if args.quick else {})
                out.append(rec)
                rounds = " ".join(f"{r['order'][0]}{r['ref_s'] / r['new_s']:.2f}" for r in rec.get("rounds", [])
                                  if r["label"].startswith("timed"))
                print(f"{task.id} run {run + 1}: {rec.get('verdict')} {rec.get('speedup')} CI {rec.get('ci')} "
                      f"ref {rec.get('ref_ms')} ms new {rec.get('new_ms')} ms | by order {rec.get('ratio_by_order')} "
                      f"cpu ratio {rec.get('cpu_ratio')} "
                      f"| phases {rec.get('phase_s')} cpu {rec.get('phase_cpu_s')} eval {rec.get('eval_s')} s "
                      f"| rounds {rounds} {rec.get('skipped') or rec.get('reason') or ''}", flush=True)
                if args.json:
                    Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
