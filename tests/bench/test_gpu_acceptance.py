"""The GPU acceptance script's dry run, in CI: it must work before a GPU is lent.

The dry run compiles every CUDA kernel the GPU run would evaluate with nvcc, drives the
scripted loopback LLM through kopt's own OpenAI client, and prints the table with SKIP
for the rows that need a GPU. The other tests check that a broken kernel and a hung group
become FAIL rows instead of stopping the run.
"""
from __future__ import annotations

import json
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import pytest

from benchmarks.studies.gpu_acceptance import DEFAULT_KERNELBENCH, run_group, table
from benchmarks.studies.gpu_checks import compile_only
from benchmarks.studies.gpu_kernels import KERNEL_TASK, write_solutions
from kopt.sandboxes.cuda_compile import find_nvcc

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "studies" / "gpu_acceptance.py"

needs_kernelbench = pytest.mark.skipif(not (DEFAULT_KERNELBENCH / "level1").is_dir(),
                                       reason=f"upstream KernelBench not found at {DEFAULT_KERNELBENCH}")
needs_nvcc = pytest.mark.skipif(find_nvcc() is None, reason="needs nvcc (the CUDA toolkit)")


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KOPT_CACHE_DIR", str(tmp_path / "cache"))  # nvcc really compiles


@needs_kernelbench
def test_dry_run_builds_the_table_with_gpu_rows_skipped(tmp_path):
    out = subprocess.run([sys.executable, str(SCRIPT), "--dry-run", "--work",
                          str(tmp_path / "work"), "--json", str(tmp_path / "rows.json")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    rows = {r["check"]: r for r in json.loads((tmp_path / "rows.json").read_text())["rows"]}
    assert not [r for r in rows.values() if r["status"] == "FAIL"], out.stdout
    # every group reported, nothing that needs a GPU claims to have passed
    assert len(rows) >= 30 and "kopt doctor" in rows and rows["pytest -m gpu"]["status"] == "SKIP"
    assert sum(c.startswith("copy level") for c in rows) == 10
    assert sum(c.startswith("cheat: ") for c in rows) == 5
    for check in ("fused CUDA (load_inline) on level2/16", "kopt optimize --device cuda (level2/16)",
                  "kopt bench --device cuda (5 tasks, one-shot)", "timing: events vs wall clock"):
        assert rows[check]["status"] == "SKIP", rows[check]
    # the scripted server gave the project's wrong kernel, then the right one
    assert rows["scripted server (loopback)"]["status"] == "PASS"
    if find_nvcc():
        assert all(rows[f"nvcc compile-only: {k}"]["status"] == "PASS" for k in ("cuda", "cupy", "cupy_wrong"))
    assert "passed" in out.stdout.splitlines()[-1] and "kopt GPU acceptance, dry run" in out.stdout


@needs_kernelbench
@needs_nvcc
def test_a_kernel_that_does_not_compile_is_a_fail_row(tmp_path):
    sols = write_solutions(tmp_path)
    broken = tmp_path / "broken.py"
    broken.write_text(sols["cuda"].read_text().replace("x[i] = v * scale;", "x[i] = v * scale"))
    check, status, figure = compile_only(DEFAULT_KERNELBENCH / KERNEL_TASK[0] / KERNEL_TASK[1], broken)
    assert status == "FAIL" and "compile_error" in figure and "expected" in figure, figure


def test_a_group_past_its_cap_is_a_fail_row_and_the_run_goes_on(tmp_path):
    args = Namespace(kernelbench=tmp_path, work=tmp_path, dry_run=True)
    rows = run_group("environment", 0.5, args)  # `kopt doctor` alone takes longer
    assert rows[-1][1] == "FAIL" and "time cap" in rows[-1][2], rows
    text = table(rows + [("x", "PASS", "1")], "t")
    assert text.splitlines()[-1].startswith("1 passed, 1 failed")


def test_bad_kernelbench_path_is_one_line(tmp_path):
    out = subprocess.run([sys.executable, str(SCRIPT), "--dry-run", "--kernelbench",
                          str(tmp_path / "nowhere")], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1 and "--kernelbench" in out.stderr


def test_solutions_compile_as_python(tmp_path):
    for path in write_solutions(tmp_path).values():
        compile(path.read_text(), str(path), "exec")
    assert Path(tmp_path / "cuda.py").read_text().count("load_inline(") == 1
