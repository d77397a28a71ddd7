"""A bench run's files: bench.json (the suite and its settings), one result.json per task, and
the record a task's run store reduces to. Read by the runner (to resume) and the report."""
from __future__ import annotations

import json
import os
import statistics
import threading
from collections import Counter
from pathlib import Path

from kopt.agent.errors import UserInputError
from kopt.agent.runs.store import STORE_FILE, Store
from kopt.benchmarks.fastp import failure_kind, never_slower_speedup

BENCH_FILE = "bench.json"
RESULT_FILE = "result.json"
VERIFIED = ("faster", "same", "slower")


def write_json(path: Path, data) -> None:
    """Atomic: a kill mid-write leaves the old file (or none), never half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def task_dir(bench_dir: Path, task_id: str) -> Path:
    return bench_dir / "tasks" / task_id


# -- results from a task's store ---------------------------------------------------------------

def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def result_from_store(run_dir: Path) -> dict:
    """What one task's run achieved: the best verified *proposed* candidate (the reference
    itself never counts as a solution), its failures, evaluations, tokens and dollars."""

    if not (run_dir / STORE_FILE).exists():
        return {"evaluations": 0, "tokens": 0, "cost": 0.0, "failures": {}, "correct": False, "speedup": None}
    store = Store.open_run_dir(run_dir)
    try:
        cands = {c.id: c for c in store.candidates()}
        evals: dict[str, list[dict]] = {}
        n_evals = 0
        for e in store.evaluations():
            evals.setdefault(e.candidate_id, []).append(e.result)
            n_evals += 1
        runs = store.runs()
    finally:
        store.close()
    ref = [cid for cid, c in cands.items() if not c.parent_ids]
    proposed = [cid for cid in cands if cid not in ref]
    all_results = [r for rs in evals.values() for r in rs]
    failures = Counter(k for cid in proposed for r in evals.get(cid, []) if (k := failure_kind(r.get("verdict"))))

    def verified(cid: str) -> bool:
        rs = evals.get(cid, [])
        return bool(rs) and all(r.get("correct") and r.get("verdict") in VERIFIED for r in rs)

    def speed(cid: str) -> float | None:
        return _median([r["speedup"] for r in evals.get(cid, []) if r.get("speedup")])

    ok = [cid for cid in proposed if verified(cid)]
    best = max(ok, key=lambda c: (speed(c) or 0.0, len(evals[c])), default=None)
    out = {"evaluations": n_evals, "candidates": len(proposed),
           "tokens": sum(int(c.proposer.get("tokens_in", 0)) + int(c.proposer.get("tokens_out", 0))
                         for c in cands.values()),
           "cost": round(sum(float(c.proposer.get("cost", 0.0)) for c in cands.values()), 6),
           "failures": dict(failures), "best": best,
           "speedup_never_slower": never_slower_speedup({c: evals.get(c, []) for c in proposed}),
           "model": json.loads((runs[0] if runs else {}).get("config") or "{}").get("model")}
    deg = next((r for r in all_results if r.get("degenerate")), None)
    known = any("degenerate" in r for r in all_results)
    out["degenerate"] = bool(deg) if known else None
    if deg:
        out["degenerate_reason"] = deg.get("degenerate_reason")
    if best:
        last = evals[best][-1]
        out.update(correct=True, speedup=speed(best), verdict=last.get("verdict"), kernel=last.get("kernel"),
                   plan_step=cands[best].plan_step)
    else:
        tried = [evals[c][-1] for c in proposed if evals.get(c)]
        # the most telling failure: one that got furthest (ran and was wrong > did not compile)
        order = ["unverified", "incorrect", "rejected", "timeout", "runtime_error", "compile_error"]
        tried.sort(key=lambda r: order.index(r["verdict"]) if r.get("verdict") in order else len(order))
        first = tried[0] if tried else {}
        out.update(correct=False, speedup=None, verdict=first.get("verdict"), kernel=first.get("kernel"),
                   reason=first.get("reason") or ("the proposer proposed nothing for this task" if not proposed
                                                  else "no candidate was verified"))
    ref_results = [r for cid in ref for r in evals.get(cid, [])]
    eager_ms = _median([r["ref_ms"] for r in (ref_results or all_results) if r.get("ref_ms")])
    out["eager"] = {"ms": eager_ms, "self_speedup": _median([r["speedup"] for r in ref_results if r.get("speedup")]),
                    "verdict": ref_results[-1].get("verdict") if ref_results else None}
    return out



def load_bench(bench_dir: Path) -> dict:
    p = bench_dir / BENCH_FILE
    if not p.exists():
        raise UserInputError(f"{bench_dir} is not a bench run (no {BENCH_FILE}); see `kopt runs list`")
    return json.loads(p.read_text())


def load_results(bench_dir: Path, info: dict | None = None) -> list[dict]:
    """Finished tasks' records, in suite order; unfinished ones as `status: pending`."""
    info = info or load_bench(bench_dir)
    out = []
    for t in info["tasks"]:
        p = task_dir(bench_dir, t["id"]) / RESULT_FILE
        if p.exists():
            out.append(json.loads(p.read_text()))
        else:
            out.append({**t, "status": "pending", "correct": False, "speedup": None})
    return out
