"""Bad input through the CLI: one line and exit 2 for what the user must fix; a verdict
(exit 1) for a solution that runs but is wrong. Never a traceback."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.support.cli import kopt, kopt_here

KB = Path(__file__).parents[1] / "fixtures" / "kb"
TASK = KB / "relu_task.py"


def assert_one_line_exit_2(p: subprocess.CompletedProcess, *words: str) -> str:
    out = (p.stdout + p.stderr).strip()
    assert p.returncode == 2, (p.returncode, out)
    assert "Traceback" not in out
    assert len(out.splitlines()) == 1, out
    for w in words:
        assert w in out, (w, out)
    return out


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("KOPT_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "kopt-cache"))


# -- exit 2: the user's files are missing or malformed -----------------------------------
# (kopt_here: refused before any sandbox starts, so in this process; the same entry point as `kopt`)

def test_missing_task_file(tmp_path):
    missing = tmp_path / "no_such_task.py"
    assert_one_line_exit_2(kopt_here("eval", missing, KB / "relu_torch.py"), "no_such_task.py", "not found")


def test_task_without_model_or_get_inputs():
    out = assert_one_line_exit_2(kopt_here("eval", KB / "task_no_model.py", KB / "relu_torch.py"))
    assert "Model" in out and "get_inputs" in out


def test_task_with_syntax_error(tmp_path):
    bad = tmp_path / "broken_task.py"
    bad.write_text(TASK.read_text().replace("def get_inputs():", "def get_inputs(:"))
    out = assert_one_line_exit_2(kopt_here("eval", bad, KB / "relu_torch.py"), "syntax")
    assert "broken_task.py" in out


def test_missing_solution_file(tmp_path):
    missing = tmp_path / "no_such_solution.py"
    assert_one_line_exit_2(kopt_here("eval", TASK, missing), "no_such_solution.py", "not found")


def test_task_folder_instead_of_file():
    assert_one_line_exit_2(kopt_here("eval", KB, KB / "relu_torch.py"))


# -- exit 1: the solution ran (or tried to) and the verdict says what is wrong ----------

@pytest.mark.parametrize("solution,verdicts,words", [
    ("relu_no_modelnew.py", ("runtime_error", "compile_error"), ("ModelNew",)),
    ("relu_wrong_ctor.py", ("runtime_error",), ("ModelNew", "constructor")),
    ("relu_wrong_shape.py", ("incorrect",), ("shape",)),
    ("relu_wrong_dtype.py", ("incorrect",), ("dtype",)),
])
def test_wrong_solution_gives_a_verdict(solution, verdicts, words):
    p = kopt("eval", TASK, KB / solution, "--json")
    assert "Traceback" not in p.stdout + p.stderr
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    res = json.loads(p.stdout)
    assert res["verdict"] in verdicts, res
    assert res["correct"] is False
    assert res["speedup"] is None
    reason = res["reason"]
    assert reason and "\n" not in reason, reason
    for w in words:
        assert w in reason, (w, reason)


def test_wrong_solution_plain_output_has_no_traceback():
    p = kopt("eval", TASK, KB / "relu_wrong_ctor.py")
    assert p.returncode == 1
    out = p.stdout + p.stderr
    assert "Traceback" not in out
    assert "runtime_error" in out and "constructor" in out


# -- --suite resolves a problem in a KernelBench checkout layout --------------------------

def _task(op: str) -> str:
    return TASK.read_text().replace("torch.relu(x)", op)


def test_suite_level_problem_resolves_the_task(tmp_path):
    root = tmp_path / "checkout"
    lvl1, lvl2 = root / "KernelBench" / "level1", root / "KernelBench" / "level2"
    lvl1.mkdir(parents=True)
    lvl2.mkdir(parents=True)
    (lvl1 / "19_ReLU.py").write_text(TASK.read_text())
    # neighbours a sloppy lookup would pick: other numbers sharing digits, other levels
    (lvl1 / "1_Sigmoid.py").write_text(_task("torch.sigmoid(x)"))
    (lvl1 / "9_Tanh.py").write_text(_task("torch.tanh(x)"))
    (lvl1 / "190_Neg.py").write_text(_task("-x"))
    (lvl1 / "119_Abs.py").write_text(_task("torch.abs(x)"))
    (lvl2 / "19_Exp.py").write_text(_task("torch.exp(x)"))
    p = kopt("eval", "--suite", root, "--level", "1", "--problem", "19", KB / "relu_torch.py", "--json")
    assert "Traceback" not in p.stdout + p.stderr
    assert p.returncode == 0, (p.stdout, p.stderr)
    res = json.loads(p.stdout)
    assert Path(res["task"]).resolve() == (lvl1 / "19_ReLU.py").resolve()
    assert res["correct"] is True, res


def test_suite_missing_problem_exits_2(tmp_path):
    lvl1 = tmp_path / "KernelBench" / "level1"
    lvl1.mkdir(parents=True)
    (lvl1 / "19_ReLU.py").write_text(TASK.read_text())
    assert_one_line_exit_2(kopt_here("eval", "--suite", tmp_path, "--level", "1", "--problem", "7",
                                KB / "relu_torch.py"), "problem 7")
