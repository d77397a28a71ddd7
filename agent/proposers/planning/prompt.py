"""The one prompt a planner sees, for every planner and for training (issue 21 item 6).

    rules: cpu-fold-affine-chain cpu-fuse-norm-epilogue cpu-fuse-elementwise-chain |
    forward: linear mul leaky_relu | plan:

(one line; wrapped here)

and the completion is the plan, `cpu-fold-affine-chain ; cpu-fuse-elementwise-chain` (the
first line is read; steps may carry options as in `--plan`). The forward is rendered as the
operators it applies, in order, one lower-case word each (a module call by its class, a torch
or functional call by its name, `+ - * /` as add sub mul div), so a word-level tokenizer built
from these words can read it and an LLM can too.
"""
from __future__ import annotations

import ast
import re

from kopt.agent.errors import UserInputError
from kopt.agent.proposers.planning.plans import PlanStep, applicable_rules, parse_step
from kopt.agent.proposers.rules.forward_analysis import forward_of, model_class
from kopt.agent.proposers.rules.registry import rule_ids

BINOPS = {ast.Add: "add", ast.Sub: "sub", ast.Mult: "mul", ast.Div: "div", ast.Pow: "pow", ast.MatMult: "matmul",
          ast.FloorDiv: "div", ast.Mod: "mod"}
MAX_STEPS = 4
_WORD = re.compile(r"[^a-z0-9_]+")
_STEP_IN_TEXT = re.compile(r"([A-Za-z0-9](?:[\w.-]*\w)?)(\([^()]*\))?")


def _module_types(cls: ast.ClassDef) -> dict[str, str]:
    """self.NAME -> the class it is built from in __init__ (nn.Conv2d -> conv2d)."""
    out = {}
    for node in ast.walk(cls):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            for t in node.targets:
                if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self":
                    f = node.value.func
                    out[t.attr] = (f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "module")).lower()
    return out


def forward_ops(task_source: str) -> list[str]:
    """The operators `forward` applies, in source order; [] when it cannot be read."""
    try:
        cls = model_class(ast.parse(task_source))
        fwd = forward_of(cls)
    except (SyntaxError, ValueError):
        return []
    modules, ops = _module_types(cls), []

    def visit(node: ast.AST) -> None:  # children first: the order the operators run in
        for child in ast.iter_child_nodes(node):
            visit(child)
        if isinstance(node, ast.BinOp) and type(node.op) in BINOPS:
            ops.append(BINOPS[type(node.op)])
        elif isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id == "self":
                name = modules.get(f.attr, f.attr)
            elif isinstance(f, ast.Attribute):
                name = f.attr
            else:
                name = getattr(f, "id", "call")
            ops.append(_WORD.sub("_", name.lower()).strip("_") or "call")

    for stmt in fwd.body:
        visit(stmt)
    return ops


def plan_prompt(task_source: str, rules: list[str] | None = None) -> str:
    """RULES default to the rules that apply to this task (registry order, `none` when none
    does): the planner chooses among the skill cards that match, as the coder can build them."""
    ops = " ".join(forward_ops(task_source)) or "unknown"
    shown = rules if rules is not None else list(applicable_rules(task_source))
    return f"rules: {' '.join(shown) or 'none'} | forward: {ops} | plan:"


def plan_from_completion(text: str, known: list[str] | None = None) -> list[PlanStep]:
    """The plan in a model's answer: on its first non-empty line, the known rule ids in the
    order written (each may carry options, `id(k=v)`); every other word is dropped, so prose
    around the ids, missing ';' or a stray word cost nothing but make no step. At most
    MAX_STEPS steps. (A user's `--plan` is read strictly by `plans.parse_plan` instead.)"""
    known_ids = set(known or rule_ids())
    line = next((ln for ln in text.replace("</s>", "\n").splitlines() if ln.strip()), "")
    steps = []
    for m in _STEP_IN_TEXT.finditer(line):
        if m.group(1) not in known_ids:
            continue
        try:
            steps.append(parse_step(m.group(0)))
        except UserInputError:
            steps.append(PlanStep(m.group(1)))  # options it cannot read are dropped, the step kept
    return steps[:MAX_STEPS]


def plan_words(task_sources: list[str]) -> list[str]:
    """Every word the prompts and plans of these tasks use (a word-level tokenizer's vocabulary)."""
    words = {"rules:", "|", "forward:", "plan:", ";", "unknown", "none", *rule_ids()}
    for src in task_sources:
        words.update(forward_ops(src))
    return sorted(words)
