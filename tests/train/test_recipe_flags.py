"""The recipe switches through `kopt train` (same names as GRPOConfig), the store-backed hint
source, and the evaluator's flags for the flawed-positive penalty on a real evaluation."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")

from kopt.agent.core import Evaluation  # noqa: E402
from kopt.agent.runs.store import Store  # noqa: E402
from kopt.rl_finetune.kernel_prompts import KernelPrompt, from_runs  # noqa: E402
from kopt.rl_finetune.live_reward import KernelReward  # noqa: E402
from kopt.sandboxes.evaluator import EvalConfig  # noqa: E402
from kopt.sandboxes.executor_factory import make_executor  # noqa: E402
from tests.train.test_train_command import FIXTURES, TASK, app, model_dir, run_dir, runner  # noqa: E402,F401

RECIPE_ARGS = ["--advantage", "remax", "--reward-norm", "sum", "--prompt-sampling", "vade", "--rollout-budget", "gdro",
               "--downsample", "d3s", "--partial-rollouts", "--hints", "--off-policy", "vcpo",
               "--flawed-penalty", "0.3"]


def test_kopt_train_takes_every_recipe_by_name(run_dir, model_dir, tmp_path):  # noqa: F811
    store = Store.open_run_dir(run_dir)
    child = [c for c in store.candidates() if c.parent_ids][0]
    store.add_evaluation("r1", Evaluation(child.id, {"verdict": "faster", "correct": True, "speedup": 1.5}))
    store.close()
    out = tmp_path / "out"
    r = runner.invoke(app, ["train", "--model", f"hf:{model_dir}", "--from-runs", str(run_dir), "--run-dir", str(out),
                            "--group-size", "2", "--prompts-per-step", "1", "--max-new-tokens", "4", "--lora-r", "4",
                            "--steps", "3", "--json", *RECIPE_ARGS])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["steps"] == 3
    cfg = json.loads((out / "grpo_config.json").read_text())
    assert {k: cfg[k] for k in ("advantage", "reward_norm", "prompt_sampling", "budget", "downsample",
                                "partial_rollouts", "hints", "off_policy", "flawed_penalty")} == {
        "advantage": "remax", "reward_norm": "sum", "prompt_sampling": "vade", "budget": "gdro", "downsample": "d3s",
        "partial_rollouts": True, "hints": True, "off_policy": "vcpo", "flawed_penalty": 0.3}


def test_kopt_train_recipe_errors_are_one_line(run_dir, model_dir, tmp_path):  # noqa: F811
    base = ["train", "--model", f"hf:{model_dir}", "--run-dir", str(tmp_path / "o")]
    r = runner.invoke(app, [*base, "--tasks", str(FIXTURES / "kb"), "--hints"])
    assert r.exit_code == 2 and r.output.startswith("kopt: ") and "--from-runs" in r.output
    r = runner.invoke(app, [*base, "--from-runs", str(run_dir), "--prompt-sampling", "random"])
    assert r.exit_code == 2 and "prompt-sampling" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, [*base, "--from-runs", str(run_dir), "--reward-norm", "gdpo", "--advantage", "median"])
    assert r.exit_code == 2 and "gdpo" in r.output


def test_kopt_train_companion_errors_are_one_line_before_any_training(run_dir, model_dir, tmp_path):  # noqa: F811
    """A switch without its companion stops `kopt train` with one line and exit 2 before a model is loaded:
    hints from a config file with --tasks (no stored solutions to hint with), VCPO with nothing stale."""
    base = ["train", "--model", f"hf:{model_dir}", "--run-dir", str(tmp_path / "o")]
    config = tmp_path / "train.toml"
    config.write_text("[grpo]\nhints = true\n")
    r = runner.invoke(app, [*base, "--tasks", str(FIXTURES / "kb"), "--config", str(config)])
    assert r.exit_code == 2 and r.output.startswith("kopt: ") and r.output.count("\n") == 1, r.output
    assert "hints" in r.output and "--from-runs" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, [*base, "--from-runs", str(run_dir), "--off-policy", "vcpo"])
    assert r.exit_code == 2 and r.output.count("\n") == 1 and "partial_rollouts" in r.output, r.output
    assert not (tmp_path / "o").exists()  # stopped before anything was written


def test_store_hints_start_an_answer_with_the_best_stored_solution(run_dir):  # noqa: F811
    from kopt.agent.cli.train_cmd import _hint_source

    prompts = from_runs([run_dir])
    store = Store.open_run_dir(run_dir)
    child = [c for c in store.candidates() if c.parent_ids][0]
    store.add_evaluation("r1", Evaluation(child.id, {"verdict": "faster", "correct": True, "speedup": 9.0}))
    store.close()
    hints = _hint_source([run_dir])
    answer = hints.best_answer(prompts[0].chat)
    assert answer.startswith("```python\n") and "class ModelNew" in answer
    assert hints.best_answer([{"role": "user", "content": "another prompt"}]) is None


def test_live_reward_flags_a_solution_without_a_custom_kernel(tmp_path):
    parent = (FIXTURES / "kb" / "relu_torch.py").read_text()
    prompt = KernelPrompt((("user", "make relu fast"),), TASK.resolve(), parent, "test")
    answer = f"```python\n{(FIXTURES / 'kb' / 'relu_torch.py').read_text()}```"
    ex = make_executor("local", 1)
    fn = KernelReward([prompt], ex, EvalConfig(trials=1, rounds=3, max_timing_s=2, quality_seeds=2), tmp_path,
                      flag_flaws=True)
    try:
        out = fn([prompt.chat] * 2, [answer, "no code"])
    finally:
        ex.shutdown()
    assert out[1] == {"reward": 0.0, "flawed": False}
    # rewarded as correct -- architecture §8: 0.3 + clip(log2 speedup, -1, 3), not the 0 of a failure or
    # the 0.1 of a wrong answer (a noisy copy can measure under 0.87x) -- but flagged: it launches
    # no kernel of its own
    assert out[0]["flawed"] is True
    assert out[0]["reward"] not in (0.0, 0.1) and -0.7 <= out[0]["reward"] <= 3.3
