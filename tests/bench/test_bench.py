"""`kopt bench` end to end on suites the tests write: rules with kill -9 and --resume, an
OpenAI-compatible server on loopback, --fit auto on an oversized task, bad input."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("torch")

from kopt.agent.targets.kernelbench.fit import FitConfig, fit_task  # noqa: E402
from kopt.agent.targets.kernelbench.sizes import size_constants  # noqa: E402
from kopt.benchmarks.bench_results import load_results  # noqa: E402
from kopt.benchmarks.bench_runner import BenchConfig, run_bench  # noqa: E402
from tests.support.cli import kopt_here  # noqa: E402

HEAD = "import torch\nimport torch.nn as nn\n\n\nclass Model(nn.Module):\n"
RELU_CHAIN = HEAD + """    def __init__(self):
        super().__init__()

    def forward(self, x):
        x = torch.relu(x)
        x = x * 2.0 + 1.0
        return torch.sigmoid(x)


batch_size = 64
dim = 4096


def get_inputs():
    return [torch.randn(batch_size, dim)]


def get_init_inputs():
    return []
"""
ZEROS = HEAD + """    def __init__(self):
        super().__init__()

    def forward(self, x):
        return torch.zeros(x.shape[0], 8)


batch_size = 16
dim = 256


def get_inputs():
    return [torch.randn(batch_size, dim)]


def get_init_inputs():
    return []
"""
BROKEN = ZEROS.replace("return [torch.randn(batch_size, dim)]", "raise RuntimeError('needs a dataset download')")
BIG_CONV = HEAD + """    def __init__(self, in_channels, out_channels, kernel_size):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size)

    def forward(self, x):
        return torch.relu(self.conv(x))


batch_size = 65536
in_channels = 3
out_channels = 16
height, width = 32, 32
kernel_size = 3


def get_inputs():
    return [torch.randn(batch_size, in_channels, height, width)]


def get_init_inputs():
    return [in_channels, out_channels, kernel_size]
"""
WHOLE_FILE = """```python
import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return torch.sigmoid(torch.relu(x).mul_(2.0).add_(1.0))
```"""


@pytest.fixture(autouse=True)
def bm25_skills(monkeypatch):
    """Skill retrieval by BM25: loading the embedding model is not what these tests are about."""
    monkeypatch.setenv("KOPT_SKILLS_SIMILARITY", "bm25")


def kopt(*args, **kw) -> subprocess.Popen:
    exe = Path(sys.executable).with_name("kopt")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "kopt.agent.cli.app"]
    return subprocess.Popen([*cmd, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def suite(tmp: Path, **tasks: str) -> Path:
    d = tmp / "suite"
    d.mkdir()
    for name, src in tasks.items():
        (d / f"{name}.py").write_text(src)
    return d


def test_fit_shrinks_the_batch_and_keeps_the_channels(tmp_path, monkeypatch):
    monkeypatch.setenv("KOPT_CACHE_DIR", str(tmp_path / "cache"))  # measure, do not reuse a cached fit
    task = tmp_path / "big_conv.py"
    task.write_text(BIG_CONV)
    res = fit_task(task, tmp_path / "run", FitConfig(memory_mb=64))
    assert res.changed and not res.skipped, res
    assert res.sizes["batch_size"][0] == 65536 and res.sizes["batch_size"][1] < 65536
    assert res.io_mb <= 64 and res.ref_ms is not None
    fitted = {c.name: c.value for c in size_constants(res.path.read_text())}
    assert fitted["in_channels"] == 3 and fitted["out_channels"] == 16 and fitted["kernel_size"] == 3
    assert fitted["batch_size"] == res.sizes["batch_size"][1] and res.path.name == task.name
    again = fit_task(task, tmp_path / "run", FitConfig(memory_mb=64))  # a resumed run keeps its sizes
    assert again.path == res.path and again.sizes == res.sizes


WIDE_MLP = HEAD + """    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.fc = nn.Linear(input_size, hidden_size)

    def forward(self, x):
        return self.fc(x)


batch_size = 64
input_size = 8192
hidden_size = 8192


def get_inputs():
    return [torch.randn(batch_size, input_size)]


def get_init_inputs():
    return [input_size, hidden_size]
"""


def test_fit_shrinks_weights_that_do_not_fit_and_keeps_the_batch(tmp_path, monkeypatch):
    """256 MiB of weights, 4 MiB of inputs and outputs: only the widths are too big."""
    monkeypatch.setenv("KOPT_CACHE_DIR", str(tmp_path / "cache"))
    task = tmp_path / "wide_mlp.py"
    task.write_text(WIDE_MLP)
    res = fit_task(task, tmp_path / "run", FitConfig(params_mb=32, max_ms=1000))
    assert not res.skipped, res
    assert "batch_size" not in res.sizes
    assert res.sizes["input_size"] == [8192, 2048] and res.sizes["hidden_size"] == [8192, 2048]


def test_a_reference_too_slow_at_the_smallest_sizes_is_skipped_with_its_time(tmp_path, monkeypatch):
    """Nothing left to shrink and one call 30x max_ms (the limit is 20x): skipped
    with the measured time, not run for minutes (upstream VGG16 took 6.6 s a call here)."""
    monkeypatch.setenv("KOPT_CACHE_DIR", str(tmp_path / "cache"))
    task = tmp_path / "slow.py"
    task.write_text(HEAD + """    def forward(self, x):
        import time
        time.sleep(0.3)
        return x * 2


def get_inputs():
    return [torch.randn(4, 4)]


def get_init_inputs():
    return []
""")
    res = fit_task(task, tmp_path / "run", FitConfig(max_ms=10))
    assert res.skipped and "too big" in res.skipped and "limit 200 ms" in res.skipped, res
    assert "a reference call takes 3" in res.skipped  # ~300 ms, measured


def test_bench_survives_kill_9_and_resumes(tmp_path):
    s = suite(tmp_path, **{"1_relu_chain": RELU_CHAIN, "2_zeros": ZEROS})
    bench = tmp_path / "bench"
    p = kopt("bench", s, "--run-dir", bench, "--fit", "none", "--baselines", "eager", start_new_session=True)
    first = bench / "tasks" / "1_relu_chain" / "result.json"
    deadline = time.time() + 120
    while not first.exists() and p.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    os.kill(p.pid, signal.SIGKILL)
    p.communicate()
    assert first.exists(), "the first task never finished"
    kept = first.read_text()
    again = kopt("bench", "--resume", "--run-dir", bench, "--json")
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    summary = json.loads(out)
    assert first.read_text() == kept  # finished tasks are skipped, their results intact
    assert "1 already finished" not in err  # --json is quiet
    results = {r["id"]: r for r in load_results(bench)}
    relu, zeros = results["1_relu_chain"], results["2_zeros"]
    assert relu["status"] == "done" and relu["correct"] and relu["speedup"] > 0 and relu["evaluations"] == 2
    assert relu["baselines"]["eager"]["ms"] > 0
    assert zeros["degenerate"] is True and zeros["status"] == "done"
    m = summary["metrics"]["all"]
    assert m["scored"] == 1 and m["degenerate_excluded"] == 1 and m["correct_rate"] == 1.0
    assert "| 2_zeros |" in (bench / "report.md").read_text()


def test_bench_with_an_openai_compatible_server(tmp_path):
    pytest.importorskip("openai")
    pytest.importorskip("matplotlib")
    from tests.support.chat_server import ChatServer

    s = suite(tmp_path, **{"1_relu_chain": RELU_CHAIN, "2_broken": BROKEN})

    def script(body, n):
        last = body["messages"][-1]["content"]
        return 200, ("1. fuse the chain" if "Plan only" in last else WHOLE_FILE), 0

    with ChatServer(script) as srv:
        cfg = BenchConfig(suite=str(s), model="openai/tiny", base_url=srv.url, fit="none", baselines=[],
                          eval={"max_timing_s": 2, "rounds": 5})
        summary = run_bench(cfg, tmp_path / "bench")
    results = {r["id"]: r for r in load_results(tmp_path / "bench")}
    relu, broken = results["1_relu_chain"], results["2_broken"]
    assert relu["correct"] and relu["tokens"] > 0 and relu["evaluations"] == 1 and relu["candidates"] == 1
    assert broken["status"] == "skipped" and "needs a dataset download" in broken["reason"]
    m = summary["metrics"]["all"]
    assert (m["tasks"], m["skipped"], m["scored"], m["correct_rate"]) == (2, 1, 1, 1.0)
    assert m["tokens"] == relu["tokens"]
    assert (tmp_path / "bench" / "report.html").read_text().count("<svg") == 3
    assert (tmp_path / "bench" / "tasks" / "1_relu_chain" / "report.md").exists()


@pytest.mark.parametrize("args, message", [
    (["{empty}"], "no KernelBench tasks in"),
    (["{suite}", "--level", "3"], "no level 3 in"),
    (["{suite}", "--tasks", "7"], "no task 7 in this suite; it has task number(s) 1 (1_zeros)"),
    (["{suite}", "--budget", "0"], "--budget must be at least 1"),
])
def test_bad_input_is_one_line(tmp_path, args, message):
    s = suite(tmp_path, **{"1_zeros": ZEROS})
    (tmp_path / "empty").mkdir()
    p = kopt_here("bench", *[a.format(suite=s, empty=tmp_path / "empty") for a in args], "--run-dir", tmp_path / "b")
    err = p.stderr
    assert p.returncode == 2 and err.startswith("kopt: ") and err.count("\n") == 1 and message in err, err
