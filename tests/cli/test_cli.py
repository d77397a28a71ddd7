"""The `kopt` command line: the `eval --json` contract (architecture §1), run directories,
`--help` without torch, `doctor --json`."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cli import kopt_here  # reading a run dir: the script's main() in this process

KB = Path(__file__).parents[1] / "fixtures" / "kb"
TASK = KB / "relu_task.py"

# architecture §1: the fields of `kopt eval --json`
FIELDS = {"task", "solution", "device", "compiled", "correct", "speedup", "speedup_ci", "ref_ms", "new_ms",
          "checks", "verdict", "kernel"}
# architecture §4 flags a degenerate task by name; the only extra keys the contract tolerates
FLAGS = {"degenerate", "degenerate_reason"}
VERDICTS = {"faster", "same", "slower", "incorrect", "compile_error", "runtime_error", "timeout", "rejected",
            "unverified"}
KERNELS = {"cuda", "triton", "cpp", "cupy", "torch"}


def kopt(*args: str | Path, env: dict | None = None) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("kopt")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "kopt.agent.cli.app"]
    return subprocess.run([*cmd, *map(str, args)], capture_output=True, text=True, timeout=600, env=env)


def check_contract(res: dict) -> None:
    keys = set(res)
    assert FIELDS <= keys, f"missing: {FIELDS - keys}"
    speed = res["verdict"] in ("faster", "same", "slower")
    extra = keys - FIELDS - FLAGS - ({"reason"} if not speed else set())
    assert not extra, f"fields outside architecture §1: {extra}"
    if not speed:
        assert isinstance(res["reason"], str) and res["reason"] and "\n" not in res["reason"]
    assert res["verdict"] in VERDICTS
    assert res["kernel"] in KERNELS
    assert res["device"] in ("cpu", "cuda")
    assert isinstance(res["task"], str) and isinstance(res["solution"], str)
    assert isinstance(res["compiled"], bool) and isinstance(res["correct"], bool)
    checks = res["checks"]
    assert isinstance(checks, dict)
    if speed:
        assert isinstance(checks["trials"], int) and checks["trials"] >= 1
        assert isinstance(checks["shapes"], int) and checks["shapes"] >= 1
        assert isinstance(checks["max_abs_err"], float) and checks["max_abs_err"] >= 0
        for k in ("speedup", "ref_ms", "new_ms"):
            assert isinstance(res[k], float) and res[k] > 0, (k, res[k])
        lo, hi = res["speedup_ci"]
        assert lo <= res["speedup"] <= hi


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """One `kopt eval --json --run-dir` of a correct solution: (completed process, runs root, run dir)."""
    root = tmp_path_factory.mktemp("runs")
    run_dir = root / "eval-relu"
    env = {**os.environ, "KOPT_CACHE_DIR": str(tmp_path_factory.getbasetemp() / "kopt-cache")}
    p = kopt("eval", TASK, KB / "relu_torch.py", "--json", "--run-dir", run_dir, env=env)
    return p, root, run_dir


def test_eval_json_has_exactly_the_contract_fields(recorded):
    p, _, _ = recorded
    assert p.returncode == 0, (p.stdout, p.stderr)
    res = json.loads(p.stdout)
    check_contract(res)
    assert res["verdict"] in ("faster", "same", "slower")
    assert "reason" not in res
    assert res["correct"] is True and res["compiled"] is True
    assert res["kernel"] == "torch" and res["device"] == "cpu"
    assert Path(res["task"]).name == "relu_task.py" and Path(res["solution"]).name == "relu_torch.py"


def test_eval_json_of_a_wrong_solution_has_a_reason():
    p = kopt("eval", TASK, KB / "relu_wrong_values.py", "--json")
    assert p.returncode == 1, (p.stdout, p.stderr)
    res = json.loads(p.stdout)
    check_contract(res)
    assert res["verdict"] == "incorrect"
    assert res["correct"] is False and res["speedup"] is None and res["speedup_ci"] is None


def test_eval_json_of_an_unverified_solution_has_a_reason():
    p = kopt("eval", TASK, KB / "relu_cuda.py", "--json", "--device", "cpu")
    assert p.returncode == 1, (p.stdout, p.stderr)  # nothing was checked: not ok (red team 29's note)
    res = json.loads(p.stdout)
    check_contract(res)
    assert res["verdict"] == "unverified" and res["correct"] is False and res["kernel"] == "cuda"
    assert kopt("eval", TASK, KB / "relu_cuda.py", "--compile-only", "--device", "cpu").returncode == 0


def test_run_dir_is_listed_by_runs_list(recorded):
    p, root, run_dir = recorded
    res = json.loads(p.stdout)
    q = kopt_here("runs", "list", root, "--json")
    assert q.returncode == 0, q.stderr
    rows = json.loads(q.stdout)
    assert len(rows) == 1, rows
    row = rows[0]
    assert Path(row["dir"]).resolve() == run_dir.resolve()
    assert row["command"] == "eval"
    assert row["status"] == "done"
    assert row["evaluations"] == 1
    assert row["best_speedup"] == pytest.approx(res["speedup"])
    assert Path(row["target"]).name == "relu_task.py"


def test_run_dir_is_shown_by_runs_show(recorded):
    p, _, run_dir = recorded
    res = json.loads(p.stdout)
    q = kopt_here("runs", "show", run_dir, "--json")
    assert q.returncode == 0, q.stderr
    info = json.loads(q.stdout)
    assert len(info["runs"]) == 1 and info["runs"][0]["status"] == "done"
    assert len(info["candidates"]) == 1
    assert len(info["evaluations"]) == 1
    ev = info["evaluations"][0]
    assert ev["candidate"] == info["candidates"][0]["id"]
    assert ev["verdict"] == res["verdict"]
    assert ev["speedup"] == pytest.approx(res["speedup"])
    assert ev["speedup_ci"] == pytest.approx(res["speedup_ci"])


def test_runs_show_of_a_non_run_dir_exits_2(tmp_path):
    q = kopt_here("runs", "show", tmp_path)
    out = (q.stdout + q.stderr).strip()
    assert q.returncode == 2 and len(out.splitlines()) == 1 and "Traceback" not in out, out


def test_runs_list_of_an_empty_root(tmp_path):
    q = kopt_here("runs", "list", tmp_path, "--json")
    assert q.returncode == 0 and json.loads(q.stdout) == []


def test_help_exits_0():
    p = kopt("--help")
    assert p.returncode == 0, p.stderr
    assert "eval" in p.stdout and "runs" in p.stdout and "doctor" in p.stdout


def test_importing_the_cli_does_not_import_torch():
    code = ("import sys, kopt.agent.cli.app\n"
            "heavy = [m for m in ('torch', 'numpy', 'triton') if m in sys.modules]\n"
            "print(','.join(heavy))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "torch" not in p.stdout.split(","), p.stdout


def test_doctor_json():
    p = kopt("doctor", "--json")
    assert p.returncode == 0, p.stderr
    info = json.loads(p.stdout)
    assert isinstance(info, dict)
    for key in ("sandbox", "g++", "torch", "cuda"):
        assert key in info and isinstance(info[key], str) and info[key], (key, info)


def test_runs_show_prints_markup_in_stored_text_as_text(tmp_path):
    """A candidate's compile error can hold '[/]' (e.g. #include "[/]x.h"): shown as written."""
    from kopt.agent.core import Candidate, Evaluation
    from kopt.agent.runs.store import Store

    store = Store.open_run_dir(tmp_path)
    store.set_meta("run_id", "r1")
    store.start_run("r1", "optimize", "[bold]prog.cpp", {})
    cand = Candidate(code="int main(){}", plan_step="[/]")
    store.add_candidate("r1", cand)
    reason = 'compile error: "[/]x.h" [/bold] not found'
    store.add_evaluation("r1", Evaluation(cand.id, {"verdict": "compile_error", "reason": reason,
                                                    "speedup": None, "speedup_ci": None}))
    store.close()
    q = kopt_here("runs", "show", tmp_path)
    assert q.returncode == 0 and "Traceback" not in q.stderr, q.stderr
    assert "[/]x.h" in q.stdout and "[bold]prog.cpp" in q.stdout, q.stdout
