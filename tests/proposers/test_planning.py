"""Plans as actions: parsing, running steps through the rules registry (no-ops included), and
the one prompt format planners are shown and trained on. No evaluation here: whether a
candidate is correct and faster is the evaluator's job (tests/sandboxes/test_eval_cache.py,
tests/train/test_planner.py)."""
from __future__ import annotations

import pytest

from kopt.agent.errors import UserInputError
from kopt.agent.proposers.planning.plans import (
    PlanStep,
    final_code,
    heuristic_plan,
    parse_plan,
    plan_space,
    render_plan,
    run_plan,
)
from kopt.agent.proposers.planning.prompt import forward_ops, plan_from_completion, plan_prompt, plan_words
from kopt.agent.proposers.rules.registry import rule_ids

GEMM_SCALE_RELU = '''import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, in_features, out_features, scale):
        super().__init__()
        self.fc = nn.Linear(in_features, out_features)
        self.scale = scale

    def forward(self, x):
        x = self.fc(x)
        x = x * self.scale
        x = torch.relu(x)
        x = x + 1.0
        return x


def get_inputs():
    return [torch.randn(8, 32)]


def get_init_inputs():
    return [32, 16, 0.5]
'''


def test_parse_plan_with_options_and_render_round_trip():
    steps = parse_plan("cpu-fold-affine-chain(fuse_tail=false, k=3); cpu-fuse-elementwise-chain\n")
    assert steps == [PlanStep("cpu-fold-affine-chain", (("fuse_tail", False), ("k", 3))),
                     PlanStep("cpu-fuse-elementwise-chain")]
    assert parse_plan(render_plan(steps)) == steps


@pytest.mark.parametrize("text", ["", " ; ", "rule(x)", "(no id)"])
def test_bad_plans_are_one_line_user_errors(text):
    with pytest.raises(UserInputError) as e:
        parse_plan(text)
    assert "\n" not in str(e.value)


def test_an_unknown_rule_is_a_noop_not_an_exception():
    results = run_plan(GEMM_SCALE_RELU, parse_plan("cpu-no-such-rule; cpu-fuse-elementwise-chain"))
    assert [r.status for r in results] == ["no-op", "applied"]
    assert "no rule 'cpu-no-such-rule'" in results[0].reason
    assert "ModelNew" in final_code(results)


def test_a_rule_with_nothing_to_do_is_a_noop_with_the_rules_reason():
    results = run_plan(GEMM_SCALE_RELU, [PlanStep("cpu-fuse-norm-epilogue")])
    assert results[0].status == "no-op" and "GroupNorm" in results[0].reason
    assert final_code(results) is None


def test_steps_build_on_the_previous_step():
    """Fold the affine part without its tail, then fuse the elementwise tail of the folded code:
    the second step reads the first step's ModelNew, and its output differs from the first's."""
    results = run_plan(GEMM_SCALE_RELU, parse_plan("cpu-fold-affine-chain(fuse_tail=false); "
                                                   "cpu-fuse-elementwise-chain"))
    assert [r.status for r in results] == ["applied", "applied"], [r.reason for r in results]
    assert results[1].code != results[0].code and "class ModelNew" in results[1].code
    assert "cpu-fold-affine-chain" in results[0].skills


def test_order_matters_in_the_plan_space():
    codes = {render_plan(p): final_code(run_plan(GEMM_SCALE_RELU, p)) for p in plan_space(2)}
    assert len(plan_space(2)) == len(rule_ids()) + len(rule_ids()) * (len(rule_ids()) - 1)
    assert len({c for c in codes.values() if c}) >= 2


def test_heuristic_plan_is_the_first_rule_that_applies():
    plan = heuristic_plan(GEMM_SCALE_RELU)
    assert len(plan) == 1 and run_plan(GEMM_SCALE_RELU, plan)[0].status == "applied"


def test_prompt_renders_the_forward_in_execution_order():
    assert forward_ops(GEMM_SCALE_RELU) == ["linear", "mul", "relu", "add"]
    p = plan_prompt(GEMM_SCALE_RELU)
    assert p.startswith("rules: ") and p.endswith("| forward: linear mul relu add | plan:")
    assert set(p.split()) <= set(plan_words([GEMM_SCALE_RELU]))  # a word-level tokenizer reads every word


def test_prompt_shows_only_the_rules_that_build_a_candidate_for_the_task():
    shown = plan_prompt(GEMM_SCALE_RELU).split(" | ")[0].split()[1:]
    assert shown and set(shown) < set(rule_ids())
    assert shown == [r for r in rule_ids() if r in shown]  # registry order: the heuristic's pick comes first
    assert all(run_plan(GEMM_SCALE_RELU, [PlanStep(r)])[0].status == "applied" for r in shown)
    assert all(run_plan(GEMM_SCALE_RELU, [PlanStep(r)])[0].status == "no-op" for r in rule_ids() if r not in shown)
    assert heuristic_plan(GEMM_SCALE_RELU) == [PlanStep(shown[0])]
    assert plan_prompt("x = 1\n").startswith("rules: none | forward: unknown")
    assert plan_prompt(GEMM_SCALE_RELU, rules=rule_ids()).split(" | ")[0].split()[1:] == rule_ids()


def test_completion_to_plan_tolerates_prose_and_end_tokens():
    assert plan_from_completion(" cpu-fold-affine-chain ; cpu-fuse-elementwise-chain </s> junk") == \
        [PlanStep("cpu-fold-affine-chain"), PlanStep("cpu-fuse-elementwise-chain")]
    assert plan_from_completion("\nI would fuse (the chain)\n") == []
    assert plan_from_completion("use cpu-fuse-norm-epilogue, then cpu-fold-affine-chain(x).") == \
        [PlanStep("cpu-fuse-norm-epilogue"), PlanStep("cpu-fold-affine-chain")]  # unreadable options dropped
    assert plan_from_completion("linear cpu-no-such-rule mul") == []
    assert len(plan_from_completion(" ; ".join(["cpu-fuse-elementwise-chain"] * 9))) == 4
