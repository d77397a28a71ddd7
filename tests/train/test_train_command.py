"""`kopt train` on a tiny run store: it trains, checkpoints, resumes and leaves a model that
`--model hf:OUT` loads; and the live reward runs a real sandboxed evaluation per new answer."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")
pytest.importorskip("tokenizers")

from typer.testing import CliRunner  # noqa: E402

from kopt.agent.cli.app import app  # noqa: E402
from kopt.agent.core import Candidate  # noqa: E402
from kopt.agent.proposers.llm_proposer import code_messages  # noqa: E402
from kopt.agent.runs.store import Store  # noqa: E402
from kopt.agent.search.loop import reference_solution  # noqa: E402
from kopt.rl_finetune.kernel_prompts import KernelPrompt, from_runs, parse_stored_prompt  # noqa: E402
from kopt.rl_finetune.live_reward import KernelReward  # noqa: E402
from kopt.rl_finetune.toy import ToyTask, toy_model, toy_tokenizer  # noqa: E402
from kopt.sandboxes.evaluator import EvalConfig  # noqa: E402
from kopt.sandboxes.executor_factory import make_executor  # noqa: E402

FIXTURES = Path(__file__).parents[1] / "fixtures"
TASK = FIXTURES / "kb" / "relu_task.py"
TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} </s> {% endfor %}"
            "{% if add_generation_prompt %}<|assistant|>{% endif %}")
runner = CliRunner()


def stored_prompt(messages: list[dict]) -> str:
    return "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in messages)  # as LLMProposer stores it


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("run")
    source = TASK.read_text()
    root = Candidate(code=reference_solution(source), plan_step="reference")
    messages = code_messages({"task_source": source, "parent": root, "lessons": ""}, "use clamp")
    child = Candidate(code=root.code, parent_ids=[root.id], prompt=stored_prompt(messages), completion="...",
                      proposer={"model": "openai/x"})
    store = Store.open_run_dir(d)
    store.start_run("r1", "optimize", str(TASK.resolve()), {})
    store.add_candidate("r1", root)
    store.add_candidate("r1", child)
    store.close()
    return d


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("tiny")
    tok = toy_tokenizer(ToyTask())
    tok.chat_template = TEMPLATE
    tok.add_tokens(["<|system|>", "<|user|>", "<|assistant|>", "```python", "ModelNew"])
    toy_model(tok, hidden=32).save_pretrained(d)
    tok.save_pretrained(d)
    return d


def test_stored_prompts_round_trip(run_dir):
    prompts = from_runs([run_dir])
    assert len(prompts) == 1
    p = prompts[0]
    assert [r for r, _ in p.messages] == ["system", "user"]
    assert "Implement only this plan step as a small change: use clamp" in p.messages[1][1]
    assert p.task == TASK.resolve() and "class ModelNew" in p.parent_code
    assert parse_stored_prompt(stored_prompt(p.chat)) == p.chat


def read_steps(out: Path) -> list[int]:
    with (out / "metrics.csv").open() as fh:
        return [int(r["step"]) for r in csv.DictReader(fh)]


def test_kopt_train_checkpoints_resumes_and_leaves_a_loadable_model(run_dir, model_dir, tmp_path):
    out = tmp_path / "out"
    args = ["train", "--model", f"hf:{model_dir}", "--from-runs", str(run_dir), "--run-dir", str(out), "--group-size",
            "2", "--prompts-per-step", "1", "--max-new-tokens", "4", "--lora-r", "4", "--save-every", "2",
            "--lr", "1e-3", "--json"]
    r = runner.invoke(app, [*args, "--steps", "3"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["steps"] == 3 and summary["prompts"] == 1
    assert read_steps(out) == [1, 2, 3]
    assert (out / "checkpoints" / "step-000002" / "trainer_state.json").is_file()
    assert (out / "training.png").stat().st_size > 1000
    assert json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == str(model_dir)

    again = runner.invoke(app, [*args, "--steps", "3"])
    assert again.exit_code == 2 and "--resume" in again.output  # refuses to overwrite a run's checkpoints

    shutil.rmtree(out / "checkpoints" / "step-000003")  # as if killed after step 3, before its checkpoint
    r = runner.invoke(app, [*args, "--steps", "5", "--resume", "--override"])  # more steps: a changed setting
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["steps"] == 5
    assert read_steps(out) == [1, 2, 3, 4, 5]  # 1-2 kept from the first run, 3-5 trained after its checkpoint
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-000004", "step-000005"]  # 2 kept

    from kopt.agent.proposers.backends.hf_local import HFChat

    chat = HFChat(str(out), max_new_tokens=3, seed=0)
    assert type(chat.model).__name__ == "PeftModelForCausalLM"
    assert isinstance(chat.complete([{"role": "user", "content": "tune kernel k1"}]).text, str)


def test_kopt_train_user_errors_are_one_line(run_dir, model_dir, tmp_path):
    r = runner.invoke(app, ["train", "--model", "rules", "--from-runs", str(run_dir)])
    assert r.exit_code == 2 and r.output.startswith("kopt: ") and "hf:" in r.output
    r = runner.invoke(app, ["train", "--model", f"hf:{model_dir}"])
    assert r.exit_code == 2 and "--from-runs" in r.output
    r = runner.invoke(app, ["train", "--model", f"hf:{model_dir}", "--from-runs", str(tmp_path)])
    assert r.exit_code == 2 and "no run" in r.output
    r = runner.invoke(app, ["train", "--model", f"hf:{model_dir}", "--from-runs", str(run_dir), "--advantage", "x",
                            "--run-dir", str(tmp_path / "o")])
    assert r.exit_code == 2 and "advantage" in r.output and "Traceback" not in r.output


def test_live_reward_evaluates_each_new_answer_once(tmp_path):
    parent = reference_solution(TASK.read_text())
    prompt = KernelPrompt((("user", "make relu fast"),), TASK.resolve(), parent, "test")
    good = f"```python\n{(FIXTURES / 'kb' / 'relu_torch.py').read_text()}```"
    wrong = f"```python\n{(FIXTURES / 'kb' / 'relu_wrong_values.py').read_text()}```"
    ex = make_executor("local", 2)
    fn = KernelReward([prompt], ex, EvalConfig(trials=1, rounds=3, max_timing_s=2, quality_seeds=2), tmp_path)
    bad_edit = "<<<<<<< SEARCH\nnope\n=======\nx\n>>>>>>> REPLACE"
    try:
        rewards = fn([prompt.chat] * 5, [good, "no code here", wrong, good, bad_edit])
    finally:
        ex.shutdown()
    assert fn.evaluations == 2  # the repeated answer reuses its evaluation; the unusable ones cost none
    assert rewards[1] == rewards[4] == 0.0 and rewards[2] == 0.1
    assert rewards[0] == rewards[3] and rewards[0] not in (0.0, 0.1)
    assert fn.verdicts["no_code"] == 2 and fn.verdicts["incorrect"] == 1
