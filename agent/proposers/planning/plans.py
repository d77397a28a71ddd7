"""Plan steps: parse them, run them through the rules registry, and enumerate the plan space.

Syntax: steps separated by `;` or newlines, each a rule's skill card id with optional options,
`cpu-fold-affine-chain(fuse_tail=false); cpu-fuse-elementwise-chain`. Values are true/false,
numbers or bare words.

Running a plan: step k is applied to the code step k-1 produced (the task's source for the
first step). The rules read a `Model` class, so the previous step's `ModelNew` is read under
that name, with its private module-level names tagged by their step (`_LIB` -> `_s1_LIB`) so
the next rule's own helpers -- a second C++ library -- sit beside them; the step's output
defines `ModelNew` again and keeps what it needs of the code it read. A step whose rule does
not apply -- an unknown id, nothing to do on this code, a file that could not run -- is a
`no-op` with the rule's reason, and the next step builds on the last code that was produced.
"""
from __future__ import annotations

import ast
import functools
import itertools
import re
from dataclasses import dataclass, field

from kopt.agent.errors import UserInputError
from kopt.agent.proposers.rules.carry_over import isolate
from kopt.agent.proposers.rules.registry import NoOp, analyse, apply, rule_ids

_STEP = re.compile(r"^\s*([A-Za-z0-9][\w.-]*)\s*(?:\((.*)\))?\s*$", re.S)


@dataclass(frozen=True)
class PlanStep:
    rule: str
    options: tuple[tuple[str, object], ...] = ()

    def render(self) -> str:
        if not self.options:
            return self.rule
        opts = ", ".join(f"{k}={_show(v)}" for k, v in self.options)
        return f"{self.rule}({opts})"


@dataclass
class StepResult:
    step: PlanStep
    status: str  # applied | no-op
    reason: str = ""  # a no-op's reason, or what the applied step did
    code: str | None = None  # the candidate this step made (applied only)
    skills: list[str] = field(default_factory=list)

    def record(self) -> dict:
        return {"step": self.step.render(), "status": self.status, "reason": self.reason, "skills": self.skills}


def _show(v: object) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)


def _value(text: str) -> object:
    t = text.strip()
    if t.lower() in ("true", "false"):
        return t.lower() == "true"
    for cast in (int, float):
        try:
            return cast(t)
        except ValueError:
            pass
    return t.strip("'\"")


def parse_step(text: str) -> PlanStep:
    m = _STEP.match(text)
    if not m:
        raise UserInputError(f"cannot read plan step {text.strip()!r}: write a rule id, optionally with options, "
                             "e.g. cpu-fold-affine-chain(fuse_tail=false)")
    options = []
    for part in filter(None, (p.strip() for p in (m.group(2) or "").split(","))):
        if "=" not in part:
            raise UserInputError(f"plan step option {part!r} needs a value: name=value")
        k, v = part.split("=", 1)
        options.append((k.strip(), _value(v)))
    return PlanStep(m.group(1), tuple(options))


def parse_plan(text: str) -> list[PlanStep]:
    """`--plan "a; b(opt=1)"` -> steps. An empty plan is bad input."""
    steps = [parse_step(s) for s in re.split(r"[;\n]", text) if s.strip()]
    if not steps:
        raise UserInputError("--plan is empty: give rule ids separated by ';' (see `kopt skills list`)")
    return steps


def render_plan(steps: list[PlanStep]) -> str:
    return "; ".join(s.render() for s in steps)


def _as_model(code: str) -> str:
    """A previous step's solution as the rules read a task: class ModelNew named Model."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):  # a model's code: anything
        return code
    names = {n.name for n in tree.body if isinstance(n, ast.ClassDef)}
    if "Model" in names or "ModelNew" not in names:
        return code
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == "ModelNew":
            node.name = "Model"
        elif isinstance(node, ast.Name) and node.id == "ModelNew":
            node.id = "Model"
    return ast.unparse(tree) + "\n"


def run_plan(task_source: str, steps: list[PlanStep]) -> list[StepResult]:
    """Each step applied to the code the previous applied step made. Never raises for a step
    that does not apply: that is a no-op result with the reason."""
    out: list[StepResult] = []
    current, made_by = task_source, 0
    for k, step in enumerate(steps, 1):
        # an earlier step's private names (its _LIB, _run_fused, ...) get the step's tag, so
        # this step's own helpers sit beside them instead of colliding
        given = isolate(current, f"s{made_by}") if made_by else current
        try:
            made = apply(step.rule, _as_model(given), dict(step.options))
        except Exception as e:  # noqa: BLE001 - a rule that cannot read this code is a no-op, not a crash
            made = NoOp(f"the rule could not read the code it was given ({type(e).__name__}: {str(e)[:120]})")
        if isinstance(made, NoOp):
            out.append(StepResult(step, "no-op", made.reason))
            continue
        current, made_by = made.code, k
        out.append(StepResult(step, "applied", made.plan_step, made.code, list(made.skills)))
    return out


def final_code(results: list[StepResult]) -> str | None:
    """The plan's candidate: the code of its last applied step (None: every step a no-op)."""
    applied = [r for r in results if r.status == "applied"]
    return applied[-1].code if applied else None


@functools.lru_cache(maxsize=512)
def applicable_rules(task_source: str) -> tuple[str, ...]:
    """The rules (registry order) that make a candidate from this task with default options:
    the skill cards a planner is shown (a rule that cannot read the task is not one of them)."""
    t = analyse(task_source)
    if isinstance(t, NoOp):
        return ()
    out = []
    for rule in rule_ids():
        try:
            made = apply(rule, t, {})
        except Exception:  # noqa: BLE001 - a rule that cannot read this task does not apply to it
            continue
        if not isinstance(made, NoOp):
            out.append(rule)
    return tuple(out)


def heuristic_plan(task_source: str) -> list[PlanStep]:
    """The rules' own choice without a planner: the first rule (registry order) that applies."""
    found = applicable_rules(task_source)
    return [PlanStep(found[0] if found else rule_ids()[0])]


def plan_space(max_len: int = 2, rules: list[str] | None = None) -> list[list[PlanStep]]:
    """Every plan of 1..max_len distinct rules, in order (the exhaustive search's space)."""
    rules = rules or rule_ids()
    return [[PlanStep(r) for r in combo] for n in range(1, max_len + 1) for combo in itertools.permutations(rules, n)]
