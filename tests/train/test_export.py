"""`kopt runs export RUN --format trl`: one JSONL line per evaluated proposal with a prompt,
reward from rl_finetune/rewards.py (mean over the evaluations that have one), readable by
`datasets.load_dataset("json", ...)`. The store is filled directly: no evaluation runs."""
from __future__ import annotations

import io
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from kopt.agent.core import Candidate, Evaluation
from kopt.agent.runs.store import Store
from kopt.rl_finetune.export import ROWS, dpo_rows, sft_rows, trl_rows, write_jsonl
from kopt.rl_finetune.rewards import reward

KEYS = {"prompt", "completion", "reward", "candidate_id", "verdict", "speedup", "model"}


def ok(speedup: float, verdict: str = "faster") -> dict:
    return {"verdict": verdict, "correct": True, "compiled": True, "speedup": speedup,
            "speedup_ci": [speedup * 0.95, speedup * 1.05], "ref_ms": 1.0, "new_ms": 1.0 / speedup, "checks": {}}


def failed(verdict: str) -> dict:
    return {"verdict": verdict, "correct": False, "compiled": verdict != "compile_error", "speedup": None,
            "speedup_ci": None, "reason": f"{verdict}: simulated", "checks": {}}


def proposal(name: str, model: str = "openai/gpt-x", parent: Candidate | None = None) -> Candidate:
    return Candidate(code=f"class ModelNew:  # {name}\n    pass\n", parent_ids=[parent.id] if parent else [],
                     plan_step=name, proposer={"model": model, "tokens_in": 10, "tokens_out": 5},
                     prompt=f"make it faster ({name}) — ünïcode", completion=f"```python\n# {name}\n```")


@pytest.fixture
def run_dir(tmp_path) -> tuple[Path, dict[str, Candidate]]:
    """A run: the reference (no prompt), proposals with every kind of outcome, and one in another run."""
    d = tmp_path / "run"
    store = Store.open_run_dir(d)
    store.start_run("r1", "optimize", "task.py", {})
    ref = Candidate(code="class ModelNew: pass\n", plan_step="reference (baseline)", proposer={"model": "reference"})
    c = {"ref": ref, "fast": proposal("fast", parent=ref), "wrong": proposal("wrong", parent=ref),
         "broken": proposal("broken", model="hf:tiny", parent=ref), "unverified": proposal("unverified", parent=ref),
         "mixed": proposal("mixed", parent=ref), "duplicate": proposal("duplicate", parent=ref)}
    for cand in c.values():
        store.add_candidate("r1", cand)
    evals = {"ref": [ok(1.0, "same")], "fast": [ok(2.0), ok(1.6)], "wrong": [failed("incorrect")],
             "broken": [failed("compile_error")], "unverified": [failed("unverified")],
             "mixed": [ok(1.5), failed("unverified")]}  # "duplicate": never evaluated
    for name, results in evals.items():
        for seed, r in enumerate(results):
            store.add_evaluation("r1", Evaluation(c[name].id, r, seed=seed))
    other = proposal("other run")
    store.start_run("r2", "optimize", "task.py", {})
    store.add_candidate("r2", other)
    store.add_evaluation("r2", Evaluation(other.id, ok(1.2)))
    c["other"] = other
    store.close()
    return d, c


def test_rows_reward_from_rewards_py_and_skips(run_dir):
    d, c = run_dir
    store = Store.open_run_dir(d)
    rows = {r["candidate_id"]: r for r in trl_rows(store, "r1")}
    assert set(rows) == {c[n].id for n in ("fast", "wrong", "broken", "mixed")}  # no prompt / no reward / no eval
    for r in rows.values():
        assert set(r) == KEYS and isinstance(r["reward"], float)
    fast = rows[c["fast"].id]
    assert fast["reward"] == pytest.approx((reward(ok(2.0)) + reward(ok(1.6))) / 2)
    assert fast["reward"] == pytest.approx(0.3 + (1 + math.log2(1.6)) / 2)
    assert fast["speedup"] == pytest.approx(1.8) and fast["verdict"] == "faster"
    assert fast["prompt"] == [{"role": "user", "content": c["fast"].prompt}]  # no "[role]" headers: one user turn
    assert fast["completion"] == [{"role": "assistant", "content": c["fast"].completion}]
    assert fast["model"] == "openai/gpt-x"
    assert rows[c["wrong"].id]["reward"] == pytest.approx(0.1) and rows[c["wrong"].id]["speedup"] is None
    assert rows[c["broken"].id]["reward"] == 0.0 and rows[c["broken"].id]["model"] == "hf:tiny"
    mixed = rows[c["mixed"].id]  # the unverified evaluation has no reward: only the measured one counts
    assert mixed["reward"] == pytest.approx(0.3 + math.log2(1.5)) and mixed["verdict"] == "unverified"
    assert {r["candidate_id"] for r in trl_rows(store)} == set(rows) | {c["other"].id}
    store.close()


def test_write_jsonl_round_trips():
    rows = [{"prompt": [{"role": "user", "content": "p\n\"q\""}], "completion": "ç", "reward": 0.3,
             "candidate_id": "a", "verdict": "same", "speedup": 1.0, "model": "m"}]
    buf = io.StringIO()
    assert write_jsonl(rows, buf) == 1
    assert buf.getvalue().count("\n") == 1 and [json.loads(line) for line in buf.getvalue().splitlines()] == rows


def kopt(*args) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("kopt")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "kopt.agent.cli.app"]
    return subprocess.run([*cmd, "runs", "export", *map(str, args)], capture_output=True, text=True, timeout=120)


def test_cli_export_to_file_and_stdout(run_dir, tmp_path):
    d, c = run_dir
    out = tmp_path / "data" / "train.jsonl"
    p = kopt(d, "--format", "trl", "--out", out)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "" and "wrote 5 example(s)" in p.stderr
    lines = out.read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines]
    assert len(rows) == 5 and all(set(r) == KEYS for r in rows)
    assert {r["candidate_id"] for r in rows} == {c[n].id for n in ("fast", "wrong", "broken", "mixed", "other")}
    q = kopt(d)  # --format trl is the default; stdout when no --out
    assert q.returncode == 0, q.stderr
    assert [json.loads(line) for line in q.stdout.splitlines()] == rows


@pytest.mark.parametrize("args", [("{tmp}",), ("{tmp}/missing",), ("{run}", "--format", "csv")])
def test_cli_bad_input_is_one_line_exit_2(run_dir, tmp_path, args):
    d, _ = run_dir
    p = kopt(*(a.format(tmp=tmp_path, run=d) for a in args))
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr and p.stdout == ""
    assert p.stderr.startswith("kopt: ")


def test_load_dataset_reads_the_export(run_dir, tmp_path):
    datasets = pytest.importorskip("datasets")
    d, _ = run_dir
    out = tmp_path / "train.jsonl"
    store = Store.open_run_dir(d)
    with out.open("w", encoding="utf-8") as fh:
        write_jsonl(trl_rows(store), fh)
    store.close()
    ds = datasets.load_dataset("json", data_files=str(out), split="train")
    assert ds.num_rows == 5 and KEYS <= set(ds.column_names)
    assert all(isinstance(x, float) for x in ds["reward"]) and "ünïcode" in ds["prompt"][0][0]["content"]


CHAT = "[system]\nyou optimize kernels\n\n[user]\nmake relu fast"


@pytest.fixture
def paired_run(tmp_path) -> tuple[Path, dict[str, Candidate]]:
    """Three answers to one multi-message prompt (faster, wrong, same speed) and one to another."""
    d = tmp_path / "paired"
    store = Store.open_run_dir(d)
    store.start_run("r1", "optimize", "task.py", {})
    c = {n: Candidate(code=f"# {n}\n", plan_step=n, proposer={"model": "m"}, prompt=CHAT, completion=f"answer {n}")
         for n in ("fast", "wrong", "same")}
    c["alone"] = Candidate(code="# alone\n", plan_step="alone", proposer={"model": "m"}, prompt="[user]\nother",
                           completion="answer alone")
    outcomes = {"fast": [ok(2.0), ok(1.9)], "wrong": [failed("incorrect")], "same": [ok(1.0, "same")],
                "alone": [ok(3.0)]}
    for n, cand in c.items():
        store.add_candidate("r1", cand)
        for r in outcomes[n]:
            store.add_evaluation("r1", Evaluation(cand.id, r))
    store.close()
    return d, c


def test_trl_prompt_is_the_stored_chat(paired_run):
    d, c = paired_run
    store = Store.open_run_dir(d)
    row = next(r for r in trl_rows(store) if r["candidate_id"] == c["fast"].id)
    store.close()
    assert row["prompt"] == [{"role": "system", "content": "you optimize kernels"},
                             {"role": "user", "content": "make relu fast"}]
    assert row["completion"] == [{"role": "assistant", "content": "answer fast"}]


def test_dpo_pairs_best_against_worst_of_the_same_prompt(paired_run):
    d, c = paired_run
    store = Store.open_run_dir(d)
    pairs = dpo_rows(store)
    store.close()
    assert len(pairs) == 1  # "alone" has no second answer to its prompt
    p = pairs[0]
    assert p["chosen"] == [{"role": "assistant", "content": "answer fast"}]
    assert p["rejected"] == [{"role": "assistant", "content": "answer wrong"}]
    assert p["chosen_reward"] > p["rejected_reward"] and p["prompt"][0]["role"] == "system"


def test_sft_keeps_only_verified_faster(run_dir, paired_run):
    d, c = paired_run
    store = Store.open_run_dir(d)
    rows = sft_rows(store)
    store.close()
    assert {r["candidate_id"] for r in rows} == {c["fast"].id, c["alone"].id}
    assert rows[0]["messages"][-1]["role"] == "assistant" and rows[0]["messages"][0]["role"] == "system"
    d, c = run_dir  # "mixed": measured faster once, then unverified (not measured): still verified faster
    store = Store.open_run_dir(d)
    assert {r["candidate_id"] for r in sft_rows(store, "r1")} == {c["fast"].id, c["mixed"].id}
    store.close()


def chat_tokenizer():
    transformers = pytest.importorskip("transformers")
    tokenizers = pytest.importorskip("tokenizers")
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel({"<unk>": 0, "<pad>": 1, "</s>": 2}, unk_token="<unk>"))
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>",
                                                eos_token="</s>")
    fast.chat_template = ("{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} </s> {% endfor %}"
                          "{% if add_generation_prompt %}<|assistant|>{% endif %}")
    return fast


@pytest.mark.parametrize("fmt", ["trl", "dpo", "sft"])
def test_each_format_loads_with_datasets_and_trl(paired_run, tmp_path, fmt):
    datasets = pytest.importorskip("datasets")
    data_utils = pytest.importorskip("trl.data_utils")
    d, _ = paired_run
    out = tmp_path / f"{fmt}.jsonl"
    p = kopt(d, "--format", fmt, "--out", out)
    assert p.returncode == 0, p.stderr
    ds = datasets.load_dataset("json", data_files=str(out), split="train")
    assert ds.num_rows >= 1
    row = ds[0]
    assert data_utils.is_conversational(row)
    text = data_utils.maybe_apply_chat_template(row, chat_tokenizer())
    if fmt == "trl":
        assert text["prompt"].startswith("<|system|> you optimize kernels") and text["prompt"].endswith("<|assistant|>")
        assert "answer" in text["completion"] and "reward" in ds.column_names
    elif fmt == "dpo":
        assert "answer fast" in text["chosen"] and "answer wrong" in text["rejected"]
    else:
        assert "<|assistant|> answer" in text["text"]
    assert set(ROWS) == {"trl", "dpo", "sft"}
