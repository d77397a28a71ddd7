"""The affine-fold rule (`cpu-fold-affine-chain`): which statements it folds, and that the
folded ModelNew computes what the task computes -- also after the weights are re-drawn in
place (the fold must follow) and with autograd on (it must fall back)."""
from __future__ import annotations

import ast
import textwrap

import pytest

torch = pytest.importorskip("torch")

from kopt.agent.proposers.rules.affine_analysis import find_affine_regions  # noqa: E402
from kopt.agent.proposers.rules.forward_analysis import forward_of, model_class  # noqa: E402
from kopt.agent.proposers.rules.registry import NoOp, analyse, apply, rule_ids  # noqa: E402

TASK = '''
import torch
import torch.nn as nn
import torch.nn.functional as F


class Model(nn.Module):
    def __init__(self, d_in, d_hidden, gain):
        super().__init__()
        self.proj = nn.Linear(d_in, d_hidden)
        self.back = nn.Linear(d_hidden, 24, bias=False)
        self.w = nn.Parameter(torch.randn(d_hidden, d_in) * 0.1)
        self.shift = nn.Parameter(torch.randn(d_hidden))
        self.column = nn.Parameter(torch.randn(5, 1))
        self.gain = gain

    def forward(self, h):
{body}
        return h


def get_inputs():
    return [torch.randn(5, 40)]


def get_init_inputs():
    return [40, 56, 0.75]
'''

# body -> number of statements the rule folds
BODIES = {
    "sum_then_width1": ("h = self.proj(h)\nh = h / 2.0\nh = torch.sum(h, dim=1, keepdim=True)\nh = h * self.gain\n"
                        "h = torch.logsumexp(h, dim=1, keepdim=True)\nh = torch.max(h, dim=1, keepdim=True)[0]", 6),
    "mean_without_keepdim": ("h = self.proj(h)\nh = h.mean(dim=-1)\nh = h + 1.5", 3),
    "composed_linears": ("h = self.proj(h)\nh = h * 2\nh = self.back(h)\nh -= 0.25", 4),
    "residual_of_a_copy": ("h = self.proj(h)\nkeep = h.clone().detach()\nh = h * self.gain\nh = h + keep", 4),
    "matmul_transposed_weight": ("h = torch.matmul(h, self.w.T)\nh = h - self.shift\nh = torch.sum(h, dim=1)", 3),
    "functional_and_tail": ("h = F.linear(h, self.w, self.shift)\nh = h * self.gain\nh = torch.relu(h)\n"
                            "h = h * 3.0", 2),
    "operand_off_the_last_dim": ("h = self.proj(h)\nh = h * self.column\nh = h.sum(dim=1, keepdim=True)", 3),
}


def task(body: str) -> str:
    return TASK.format(body=textwrap.indent(body, " " * 8))


def load(source: str) -> dict:
    ns: dict = {}
    exec(compile(source, "solution", "exec"), ns)  # a test's own generated code, as test_rules_codegen does
    return ns


@pytest.mark.parametrize("name", sorted(BODIES))
def test_the_rule_folds_the_affine_statements(name):
    body, folded = BODIES[name]
    t = analyse(task(body))
    [region] = find_affine_regions(t.forward, t.cls)
    assert region.stop - region.start == folded


@pytest.mark.parametrize("name", sorted(BODIES))
def test_folded_model_matches_the_task(name, tmp_path, monkeypatch):
    monkeypatch.setenv("KOPT_CACHE_DIR", str(tmp_path.parent / "kopt-cache"))
    src = task(BODIES[name][0])
    result = apply("cpu-fold-affine-chain", src)
    assert not isinstance(result, NoOp), result
    ref_ns, new_ns = load(src), load(result.code)
    torch.manual_seed(42)
    ref = ref_ns["Model"](*ref_ns["get_init_inputs"]())
    torch.manual_seed(42)
    new = new_ns["ModelNew"](*ref_ns["get_init_inputs"]())
    assert [p.shape for p in new.parameters()] == [p.shape for p in ref.parameters()]
    for redraw in range(3):
        if redraw:  # as the evaluator does: new weights, written in place on both sides
            gen = torch.Generator().manual_seed(redraw)
            with torch.no_grad():
                for p, q in zip(ref.parameters(), new.parameters()):
                    p.copy_(torch.rand(p.shape, generator=gen) * 2 - 1)
                    q.copy_(p)
        x = torch.randn(5, 40)
        with torch.no_grad():
            expected, got = ref(x), new(x)
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
    if name == "operand_off_the_last_dim":  # (5, 1) does not broadcast over the features: fallback
        assert new._kopt_fold_0(x) is None
    else:
        assert new._kopt_fold_0(x) is not None, "the fold did not apply"
    x = torch.randn(5, 40)
    torch.testing.assert_close(new(x), ref(x), atol=1e-4, rtol=1e-4)  # autograd on: the original statements


def test_a_nonlinearity_ends_the_region():
    src = task("h = self.proj(h)\nh = torch.relu(h)\nh = h.sum(dim=1)")
    t = analyse(src)
    assert find_affine_regions(t.forward, t.cls) == []
    result = apply("cpu-fold-affine-chain", src)
    assert isinstance(result, NoOp) and "Linear" in result.reason


def test_a_value_read_after_the_region_keeps_its_statement_outside():
    src = task("h = self.proj(h)\nmid = h * 2.0\nh = mid.sum(dim=1, keepdim=True)\nh = h + mid")
    t = analyse(src)
    [region] = find_affine_regions(t.forward, t.cls)
    assert (region.start, region.stop, region.output) == (0, 2, "mid")


def test_every_rule_has_a_card_and_unknown_ids_are_a_noop():
    from kopt.skills.library import Library

    lib = Library.load()
    for rule_id in rule_ids():
        assert lib.get(rule_id) is not None, f"rule {rule_id} has no skill card"
    result = apply("no-such-rule", task("h = self.proj(h)"))
    assert isinstance(result, NoOp) and "cpu-fold-affine-chain" in result.reason


def test_an_unreadable_task_is_a_noop_not_an_exception():
    assert isinstance(analyse("class Model:\n    pass\n"), NoOp)
    assert isinstance(apply("cpu-fold-affine-chain", "def broken(:\n"), NoOp)


def test_forward_statements_are_read_from_the_task_not_guessed():
    src = task("h = self.proj(h)\nh = h * 2.0")
    cls = model_class(ast.parse(src))
    [region] = find_affine_regions(forward_of(cls), cls)
    assert [s.kind for s in region.steps] == ["linear", "scale"]


def test_the_proposer_tries_a_work_cutting_fold_first_and_a_scale_fold_last():
    from kopt.agent.proposers.rules.kernelbench_rules import RulesProposer

    proposer = RulesProposer()
    first = proposer.candidates(task(BODIES["sum_then_width1"][0]))
    assert first[0].skills[0] == "cpu-fold-affine-chain" and first[0].try_first
    scaled = proposer.candidates(task("h = self.proj(h)\nh = h * self.gain\nh = torch.relu(h)"))
    assert [c.skills[0] for c in scaled] == ["cpu-fuse-elementwise-chain", "cpu-fold-affine-chain"]


def test_ordered_puts_work_cutting_rewrites_before_pass_only_folds():
    from kopt.agent.proposers.rules.registry import ordered

    assert ordered(task(BODIES["sum_then_width1"][0]))[0][0] == "cpu-fold-affine-chain"
    scaled = [rule_id for rule_id, _ in ordered(task("h = self.proj(h)\nh = h * self.gain\nh = torch.relu(h)"))]
    assert scaled == ["cpu-fuse-elementwise-chain", "cpu-fold-affine-chain"]
    assert ordered("not a task") == []


def test_for_cuda_the_fold_is_proposed_in_pytorch_alone():
    """The fold's solution has no C++ tail on the GPU (checked here for what it generates;
    whether it wins on a GPU is the evaluator's verdict on a machine with one)."""
    from types import SimpleNamespace

    from kopt.agent.core import Candidate
    from kopt.agent.proposers.rules.kernelbench_rules import RulesProposer
    from kopt.sandboxes.evaluator import EvalConfig

    src = task("h = self.proj(h)\nh = h / 2.0\nh = torch.sum(h, dim=1, keepdim=True)\nh = torch.relu(h)")
    target = SimpleNamespace(eval_cfg=EvalConfig(device="cuda"))
    kids = RulesProposer().propose({"task_source": src, "parent": Candidate(code=src), "target": target})
    assert kids[0].skills == ["cpu-fold-affine-chain"] and "load_cpp" not in kids[0].code
    cpu = RulesProposer().propose({"task_source": src, "parent": Candidate(code=src),
                                   "target": SimpleNamespace(eval_cfg=EvalConfig())})
    assert "load_cpp" in cpu[0].code  # on the CPU the relu after the fold is fused in C++


def test_a_plan_chains_the_fold_and_the_fusion(tmp_path, monkeypatch):
    """A later step reads the earlier step's ModelNew as Model (as plans do) and keeps its helpers."""
    monkeypatch.setenv("KOPT_CACHE_DIR", str(tmp_path.parent / "kopt-cache"))
    src = task("h = self.proj(h)\nh = h * 2.0\nh = torch.sum(h, dim=1, keepdim=True)\nh = torch.tanh(h)\nh = h + 1.0")
    first = apply("cpu-fold-affine-chain", src, {"fuse_tail": False})
    assert "load_cpp" not in first.code
    second = apply("cpu-fuse-elementwise-chain", first.code.replace("ModelNew", "Model"))
    assert not isinstance(second, NoOp), second
    assert "_kopt_matrix" in second.code and "load_cpp" in second.code
    fused_line = next(line for line in second.code.splitlines() if "_run_fused(" in line
                      and line.strip().startswith("_kopt_y ="))  # the fused call (its fallback follows)
    indent = fused_line[: len(fused_line) - len(fused_line.lstrip())]
    more = second.code.replace("ModelNew", "Model").replace(fused_line, f"{indent}h = torch.relu(h)\n{fused_line}")
    third = apply("cpu-fuse-elementwise-chain", more)  # a second C++ library would collide with the first
    assert isinstance(third, NoOp) and "C++ library" in third.reason
    ref_ns, new_ns = load(src), load(second.code)
    torch.manual_seed(0)
    ref = ref_ns["Model"](*ref_ns["get_init_inputs"]())
    torch.manual_seed(0)
    new = new_ns["ModelNew"](*ref_ns["get_init_inputs"]())
    x = torch.randn(5, 40)
    with torch.no_grad():
        torch.testing.assert_close(new(x), ref(x), atol=1e-4, rtol=1e-4)
    assert new._kopt_fold_0(x) is not None
