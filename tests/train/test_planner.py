"""Planner training: rewards of plans through the evaluation cache, and GRPO learning a plan
per task on a tiny Llama. The sandboxed evaluator is stood in for by a scorer that reads the
candidate's code (the real evaluator runs in tests/sandboxes and benchmarks/studies/closed_loop.py):
it says 'faster' for the affine fold, 'same' otherwise."""
from __future__ import annotations

from pathlib import Path

import pytest

from kopt.agent.proposers.planning.plans import PlanStep, heuristic_plan, run_plan
from kopt.rl_finetune.planner import PlanReward, PlanTask, greedy_plan, imitate_heuristic, plan_text
from kopt.sandboxes.eval_cache import EvalCache
from kopt.sandboxes.evaluator import EvalConfig

TASK = '''import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(32, 16)

    def forward(self, x):
        x = self.fc(x)
        x = x * 0.5
        x = torch.{act}(x)
        return x


def get_inputs():
    return [torch.randn(8, 32)]


def get_init_inputs():
    return []
'''
FOLD, FUSE, NORM = "cpu-fold-affine-chain", "cpu-fuse-elementwise-chain", "cpu-fuse-norm-epilogue"


class Scorer:
    def __init__(self, fast_marker: str):
        self.fast_marker, self.calls = fast_marker, 0

    def __call__(self, task, solution, cfg):
        self.calls += 1
        fast = self.fast_marker in Path(solution).read_text()
        sp = 2.0 if fast else 1.0
        return {"verdict": "faster" if fast else "same", "correct": True, "speedup": sp,
                "speedup_ci": [sp * 0.97, sp * 1.03], "checks": {}}


@pytest.fixture
def tasks(tmp_path):
    out = []
    for act in ("relu", "tanh"):
        p = tmp_path / f"{act}.py"
        p.write_text(TASK.format(act=act))
        out.append(PlanTask.from_path(p))
    return out


def test_plan_rewards_go_through_the_cache(tmp_path, tasks):
    fold_marker = run_plan(tasks[0].source, [PlanStep(FOLD)])[0].code.splitlines()[0]
    scorer = Scorer(fold_marker)
    rw = PlanReward(tasks, EvalConfig(), tmp_path / "w", EvalCache(tmp_path / "c.sqlite"), evaluate_fn=scorer)
    t = tasks[0]
    assert rw([t.prompt], [plan_text([PlanStep(NORM)])]) == [0.0]  # every step a no-op: no candidate, no evaluation
    assert scorer.calls == 0
    fold = rw.outcome(t, [PlanStep(FOLD)])
    assert fold.reward == pytest.approx(1.3) and fold.win  # 0.3 + log2(2)
    again = rw.outcome(t, [PlanStep(NORM), PlanStep(FOLD)])  # another plan, the same code
    assert again.code_sha == fold.code_sha and scorer.calls == 1
    fresh = PlanReward(tasks, EvalConfig(), tmp_path / "w2", EvalCache(tmp_path / "c.sqlite"), evaluate_fn=scorer)
    fresh.outcome(t, [PlanStep(FOLD)])  # a new session: the cache file serves it
    assert scorer.calls == 1 and fresh.cached.hits == 1


@pytest.mark.slow
def test_grpo_learns_the_rewarded_plan(tmp_path, tasks):
    pytest.importorskip("transformers")
    from kopt.rl_finetune import GRPOConfig, GRPOTrainer
    from kopt.rl_finetune.planner import planner_model, planner_tokenizer

    fold_code = run_plan(tasks[0].source, [PlanStep(FOLD)])[0].code
    marker = next(line for line in fold_code.splitlines() if "fold" in line.lower() or "gemm" in line.lower())
    rw = PlanReward(tasks, EvalConfig(), tmp_path / "w", EvalCache(tmp_path / "c.sqlite"), evaluate_fn=Scorer(marker))
    tok = planner_tokenizer(tasks)
    model = planner_model(tok, hidden=64, seed=0)
    GRPOTrainer(model, rw, [t.prompt for t in tasks], tokenizer=tok,
                config=GRPOConfig(max_steps=30, prompts_per_step=2, group_size=8, lr=3e-3, max_new_tokens=4,
                                  output_dir=str(tmp_path / "out"), log_every=100)).train()
    for t in tasks:
        plan = greedy_plan(model, tok, t.prompt)
        assert rw.outcome(t, plan).win, (t.name, plan)


def test_imitation_copies_the_heuristic_plan_onto_unseen_tasks(tmp_path):
    """The warm start of `kopt train --planner --imitate-steps`: the heuristic takes the first
    rule the prompt lists, so a policy taught it on some tasks picks it on tasks it never saw."""
    pytest.importorskip("transformers")
    from kopt.rl_finetune.planner import planner_model, planner_tokenizer

    elementwise = TASK.replace("        x = self.fc(x)\n", "").replace("self.fc = nn.Linear(32, 16)", "self.k = 2")

    def task(name: str, source: str) -> PlanTask:
        (tmp_path / f"{name}.py").write_text(source)
        return PlanTask.from_path(tmp_path / f"{name}.py")

    train = [task(f"{kind}_{act}", src.format(act=act)) for act in ("relu", "tanh")
             for kind, src in (("gemm", TASK), ("ew", elementwise))]
    held = [task(f"{kind}_sigmoid", src.format(act="sigmoid")) for kind, src in (("gemm", TASK), ("ew", elementwise))]
    assert len({heuristic_plan(t.source)[0].rule for t in held}) == 2  # the copy is not one constant plan
    tok = planner_tokenizer(train)
    model = planner_model(tok, hidden=64, seed=0)
    before = [greedy_plan(model, tok, t.prompt)[:1] == heuristic_plan(t.source) for t in train + held]
    imitate_heuristic(model, tok, train, steps=60, lr=3e-3)
    assert not all(before)
    for t in train + held:
        assert greedy_plan(model, tok, t.prompt)[:1] == heuristic_plan(t.source), t.name


def test_imitation_copies_a_first_rule_no_training_task_starts_with(tmp_path):
    """Trained only on tasks whose heuristic is one rule, the policy must still copy another
    rule its prompt lists first (the augmented prompts: random rule lists, the first the answer);
    without them it writes the one rule it saw, listed or not."""
    pytest.importorskip("transformers")
    from kopt.rl_finetune.planner import planner_model, planner_tokenizer

    elementwise = TASK.replace("        x = self.fc(x)\n", "").replace("self.fc = nn.Linear(32, 16)", "self.k = 2")
    train, held = [], []
    for name, src, into in [(f"gemm_{a}", TASK.format(act=a), train) for a in ("relu", "tanh", "sigmoid")] + \
            [("ew_sigmoid", elementwise.format(act="sigmoid"), held)]:
        (tmp_path / f"{name}.py").write_text(src)
        into.append(PlanTask.from_path(tmp_path / f"{name}.py"))
    first = {heuristic_plan(t.source)[0].rule for t in train}
    assert len(first) == 1 and heuristic_plan(held[0].source)[0].rule not in first
    tok = planner_tokenizer(train)
    plain, augmented = planner_model(tok, hidden=64, seed=0), planner_model(tok, hidden=64, seed=0)
    imitate_heuristic(plain, tok, train, steps=150, lr=3e-3, augment=0)
    imitate_heuristic(augmented, tok, train, steps=150, lr=3e-3)
    assert greedy_plan(plain, tok, held[0].prompt)[:1] != heuristic_plan(held[0].source)
    assert greedy_plan(augmented, tok, held[0].prompt)[:1] == heuristic_plan(held[0].source)
    for t in train:
        assert greedy_plan(augmented, tok, t.prompt)[:1] == heuristic_plan(t.source), t.name
