"""`--config kopt.toml`: sections checked against the existing pydantic configs, flags over the
file, the resolved config in RUN/config.json, and `--resume` holding the run to it."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.support.cli import kopt, kopt_here

KB = Path(__file__).parents[1] / "fixtures" / "kb"
FAST = """[search]
budget = 2
novelty = "tokens"
[eval]
trials = 2
rounds = 3
max_timing_s = 2.0
quality_seeds = 2
[run]
fit = "none"
"""


def one_line_error(p: subprocess.CompletedProcess, *words: str) -> None:
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert len(p.stderr.strip().splitlines()) == 1 and p.stderr.startswith("kopt: "), p.stderr
    assert "Traceback" not in p.stderr
    for w in words:
        assert w in p.stderr, (w, p.stderr)


@pytest.mark.parametrize("command", ["optimize", "bench", "train"])
@pytest.mark.parametrize("text,words", [
    ("[search]\nbudgett = 3\n", ["'budgett'", "[search]"]),
    ("[eval]\nnoise_flor = 0.2\n", ["'noise_flor'", "[eval]"]),
    ("[serach]\nbudget = 3\n", ["[serach]"]),
    ("budget = 3\n", ["'budget'", "section"]),
    ("[eval\n", ["TOML"]),
])
def test_a_bad_file_is_one_line_naming_the_key(tmp_path, command, text, words):
    if command != "optimize" and "[search]" in text:
        words = ["unknown section [search]"]  # bench and train have no [search]: the section is what is named
    cfg = tmp_path / "kopt.toml"
    cfg.write_text(text)
    args = {"optimize": [KB / "relu_task.py"], "bench": [tmp_path], "train": ["--model", "hf:x", "--tasks", tmp_path]}
    one_line_error(kopt_here(command, *args[command], "--config", cfg, "--run-dir", tmp_path / "run"), *words)


def test_a_bad_value_names_its_key(tmp_path):
    cfg = tmp_path / "kopt.toml"
    cfg.write_text("[search]\nbudget = 0\n")
    one_line_error(kopt_here("optimize", KB / "relu_task.py", "--config", cfg), "search.budget")
    cfg.write_text("[grpo]\ngroup_size = 1\n")
    one_line_error(kopt_here("train", "--model", "hf:x", "--tasks", tmp_path, "--config", cfg), "group_size")
    cfg.write_text("[grpo]\nclip_eps = \"big\"\n")  # a dataclass's field types are checked too
    one_line_error(kopt_here("train", "--model", "hf:x", "--tasks", tmp_path, "--config", cfg), "clip_eps")
    cfg.write_text("[bench]\nbudget = \"x\"\n")
    one_line_error(kopt_here("bench", tmp_path, "--config", cfg), "budget")


def test_every_section_builds_the_config_object():
    from kopt.agent.search.optimize_config import from_sections

    cfg = from_sections({"model": {"temperature": 0.2, "samples": 3, "max_tokens": 512},
                         "run": {"device": "cpu", "jobs": 2}, "search": {"top_k": 4, "epsilon": 0.01},
                         "eval": {"noise_floor": 0.05, "rounds": 9, "memory_mb": 2048}})
    assert (cfg.model.temperature, cfg.model.samples, cfg.model.max_tokens) == (0.2, 3, 512)
    assert cfg.search.top_k == 4 and cfg.search.epsilon == 0.01 and cfg.run.jobs == 2
    assert cfg.search.eval is cfg.eval and cfg.eval.noise_floor == 0.05 and cfg.eval.memory_mb == 2048


def test_model_sampling_settings_reach_the_llm_backend():
    from kopt.agent.search.optimize import _proposer
    from kopt.agent.search.optimize_config import from_sections
    from kopt.agent.targets.kernelbench.kernelbench_target import KernelBenchTarget

    cfg = from_sections({"model": {"name": "openai/tiny", "base_url": "http://127.0.0.1:9", "temperature": 0.1,
                                   "samples": 5, "max_tokens": 77, "edit_retries": 0, "max_prompt_tokens": 8000}})
    p = _proposer(cfg, KernelBenchTarget.from_path(KB / "relu_task.py"))
    assert p.samples == 5 and p.chat.temperature == 0.1 and p.chat.max_tokens == 77 and p.edit_retries == 0
    assert p.max_prompt_tokens == 8000


def test_file_flags_resolved_config_and_resume(tmp_path):
    cfg, run = tmp_path / "kopt.toml", tmp_path / "run"
    cfg.write_text(FAST)
    p = kopt("optimize", KB / "relu_task.py", "--config", cfg, "--run-dir", run, "--json", "--budget", "1")
    assert p.returncode in (0, 1), p.stderr
    stored = json.loads((run / "config.json").read_text())
    assert stored["search"]["budget"] == 1  # the flag over the file's 2
    assert stored["eval"]["trials"] == 2 and stored["eval"]["rounds"] == 3 and stored["run"]["fit"] == "none"
    assert json.loads(p.stdout)["evaluations"] == 1
    # a resume that changes a setting says so, and which
    one_line_error(kopt_here("optimize", KB / "relu_task.py", "--run-dir", run, "--resume", "--budget", "2"),
                   "--budget 2", "the run has 1", "--override")
    one_line_error(kopt_here("optimize", KB / "relu_task.py", "--run-dir", run, "--override"), "--override", "--resume")
    # the same setting given again is no change
    p = kopt("optimize", KB / "relu_task.py", "--run-dir", run, "--resume", "--budget", "1", "--json")
    assert p.returncode in (0, 1), p.stderr
    assert json.loads(p.stdout)["evaluations"] == 1
    # ... and goes on with the stored settings (trials 2, fit none) plus the one overridden
    p = kopt("optimize", KB / "relu_task.py", "--run-dir", run, "--resume", "--budget", "2", "--override", "--json")
    assert p.returncode in (0, 1), p.stderr
    stored = json.loads((run / "config.json").read_text())
    assert stored["search"]["budget"] == 2 and stored["eval"]["trials"] == 2
    assert json.loads(p.stdout)["evaluations"] == 2
