"""The run store: candidates and evaluations round-trip, and a writer killed with SIGKILL
leaves a readable store holding every row it had committed."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

from kopt.agent.core import Candidate, Evaluation
from kopt.agent.runs.store import STORE_FILE, Store, find_runs


def test_candidates_and_evaluations_round_trip(tmp_path):
    store = Store.open_run_dir(tmp_path / "run")
    store.start_run("r1", "optimize", "task.py", {"budget": 4})
    parent = Candidate(code="class ModelNew: pass\n", plan_step="copy the reference",
                       proposer={"model": "rules"})
    child = Candidate(code="class ModelNew:\n    x = 'ünïcode'\n", parent_ids=[parent.id],
                      plan_step="fuse ops",
                      skills=["fusion", "vectorize"],
                      proposer={"model": "openai/x", "tokens_in": 120, "tokens_out": 45, "cost": 0.002},
                      prompt="make it faster", completion="```python\n...\n```")
    for c in (parent, child):
        store.add_candidate("r1", c)
    result = {"verdict": "faster", "correct": True, "speedup": 1.5, "speedup_ci": [1.4, 1.6], "ref_ms": 3.0,
              "new_ms": 2.0, "checks": {"trials": 5, "shapes": 2, "max_abs_err": 1e-6}, "kernel": "torch"}
    failed = {"verdict": "incorrect", "correct": False, "speedup": None, "speedup_ci": None,
              "reason": "values differ", "checks": {}}
    store.add_evaluation("r1", Evaluation(child.id, result, seed=7, machine={"cpu": "x"}))
    store.add_evaluation("r1", Evaluation(child.id, failed, seed=8))
    store.add_evaluation("r1", Evaluation(parent.id, {**result, "speedup": 1.0, "verdict": "same"}, seed=9))
    store.set_meta("best", {"id": child.id, "speedup": 1.5})
    store.set_status("r1", "done")
    store.close()

    store = Store(tmp_path / "run" / STORE_FILE)  # a fresh connection reads it all back
    [run] = store.runs()
    assert (run["id"], run["command"], run["target"], run["status"]) == ("r1", "optimize", "task.py", "done")
    got = {c.id: c for c in store.candidates("r1")}
    assert set(got) == {parent.id, child.id}
    for c in (parent, child):
        g = got[c.id]
        assert (g.code, g.parent_ids, g.plan_step, g.skills, g.proposer, g.prompt, g.completion) == \
            (c.code, c.parent_ids, c.plan_step, c.skills, c.proposer, c.prompt, c.completion)
        assert g.created == c.created
    evals = store.evaluations("r1", candidate_id=child.id)
    assert [e.result for e in evals] == [result, failed]
    assert [e.seed for e in evals] == [7, 8]
    assert evals[0].machine == {"cpu": "x"}
    assert evals[0].verdict == "faster" and evals[0].speedup == 1.5
    assert len(store.evaluations("r1")) == 3
    assert store.evaluations("other-run") == []
    assert store.get_meta("best") == {"id": child.id, "speedup": 1.5}
    assert store.get_meta("missing", "default") == "default"
    store.close()
    assert find_runs(tmp_path) == [tmp_path / "run"]


WRITER = textwrap.dedent("""
    import sys
    from kopt.agent.core import Candidate, Evaluation
    from kopt.agent.runs.store import Store

    store = Store(sys.argv[1])
    store.start_run("r1", "optimize", "task.py", {})
    i = 0
    while True:
        c = Candidate(code="# candidate %d\\n" % i + "x = 1\\n" * 200, plan_step=str(i), id="c%06d" % i)
        store.add_candidate("r1", c)
        store.add_evaluation("r1", Evaluation(c.id, {"verdict": "same", "speedup": 1.0, "i": i}, seed=i))
        print(i, flush=True)  # only after both rows are committed
        i += 1
""")


def test_sigkill_mid_run_keeps_every_committed_row(tmp_path):
    db = tmp_path / STORE_FILE
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(db)], stdout=subprocess.PIPE, text=True)
    printed: list[int] = []
    try:
        deadline = time.monotonic() + 60
        seen_live = False
        while len(printed) < 300 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            printed.append(int(line))
            if len(printed) == 100:  # readable by another connection while the writer runs (WAL)
                reader = Store(db)
                seen_live = len(reader.candidates("r1")) >= 100
                reader.close()
        os.kill(proc.pid, signal.SIGKILL)
        printed += [int(x) for x in proc.stdout.read().split()]
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    assert len(printed) >= 300, f"writer wrote only {len(printed)} rows in 60 s"
    assert seen_live, "the store could not be read while the writer was running"

    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()
    store = Store(db)
    cands = {c.id: c for c in store.candidates("r1")}
    evals = store.evaluations("r1")
    store.close()
    for i in printed:
        assert f"c{i:06d}" in cands, f"committed candidate {i} lost"
    eval_ids = [e.result["i"] for e in evals]
    assert set(printed) <= set(eval_ids), "committed evaluations lost"
    # at most the one row between a commit and its print can be beyond what was printed
    assert len(cands) - len(printed) in (0, 1) and len(evals) - len(printed) in (0, 1)
    assert eval_ids == list(range(len(evals)))  # nothing half-written, nothing out of order
