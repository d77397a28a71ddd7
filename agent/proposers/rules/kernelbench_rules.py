"""`rules`: the built-in proposer that needs no LLM.

It applies the mechanical skills it can prove it understands and says so in every
candidate it makes (each is a rule of `registry`, addressable by its skill card's id):
- first, rewrites that remove arithmetic or change the algorithm (ALGEBRAIC_RULES): a
  Linear/matmul and the affine statements after it as one GEMM with folded weights
  (`affine_analysis`, `affine_codegen`), a convolution averaged over space from window
  sums (`conv_mean`), a convolution with the per-channel scales / shifts / eval-mode
  BatchNorm after it folded into its weights (`conv_affine`), a training BatchNorm or a
  scale pooled first, then normalised or averaged over space, in one pass (`pool_fusion`),
  consecutive poolings as one (`pool_chain`), max/min over a dim whose indices are dropped as amax/amin
  (`values_reduction`), a loss as one C++ reduction
  pass (`full_reduction`), convolutions in channels-last (`channels_last`), clamps an activation already bounds removed
  (`redundant_ops`); a fold that only removes passes is tried after the templates below;
- runs of elementwise statements in `forward` become one OpenMP C++ pass over memory (in
  place when the value is a temporary);
- a GroupNorm / InstanceNorm / LayerNorm module call, or a softmax / log_softmax over the
  last dim or over the channels (dim 1, `softmax_channels`), becomes one C++ kernel per
  row, (sample, group) or tile of positions that also applies the cheap elementwise
  statements before it and all the elementwise statements after it.
When a forward has both, a second candidate fuses only the elementwise runs, in case
PyTorch's own norm kernel wins on this machine. The evaluator keeps what is really
faster; when no rule applies it proposes nothing rather than guessing.

For a target evaluated with `--device cuda` the same plans are written for the GPU
(`kopt.agent.proposers.rules.gpu_codegen`): the norm plan as Triton kernels, the elementwise plan as one
CUDA kernel per run through `load_inline`; the PyTorch-only rewrites (affine fold, conv
global mean) come first there too.
"""
from __future__ import annotations

import ast

from kopt.agent.core import Candidate
from kopt.agent.proposers.rules.build_flags import BASE_FLAGS, FLAG_NAME, FLAGS
from kopt.agent.proposers.rules.cpu_codegen import describe, generate
from kopt.agent.proposers.rules.cpu_norm_analysis import NormRun, find_norm_runs
from kopt.agent.proposers.rules.forward_analysis import FusedRun, find_fusable_runs, forward_of, model_class
from kopt.agent.proposers.rules.gpu_codegen import generate as generate_gpu
from kopt.agent.proposers.rules.gpu_codegen import supports
from kopt.agent.proposers.rules.named_return import name_returned_value, normalise
from kopt.agent.proposers.rules.registry import NoOp, RuleCandidate, analyse, apply, checked
from kopt.agent.proposers.rules.softmax_channels import channel_softmax_cards
from kopt.skills.prompt_sections import order_templates

ELEMENTWISE_SKILLS = ["cpu-fuse-elementwise-chain", "cpu-fast-math-simd"]
NORM_SKILLS = ["cpu-fuse-norm-epilogue", "cpu-fast-math-simd"]
GPU_ELEMENTWISE_SKILLS = ["cuda-kernel-fusion", "cuda-grid-stride-loop"]
GPU_NORM_SKILLS = ["triton-row-reduction", "triton-fused-epilogue", "triton-masked-loads"]
# rewrites that change the computation itself (no compiler makes them): tried before the
# fusion templates whenever they apply
ALGEBRAIC_RULES = ("cpu-fold-affine-chain", "cpu-fold-conv-global-mean", "cpu-fold-conv-affine",
                   "cpu-fuse-batch-norm-pool", "cpu-fuse-pool-global-mean", "cpu-compose-pools",
                   "cpu-separable-pool", "cpu-swap-submodules", "cpu-values-only-reduction",
                   "cpu-dim-reduction",
                   "cpu-fuse-loss-reduction", "cpu-fuse-cross-entropy", "cpu-fuse-triplet-loss",
                   "cpu-conv-channels-last", "cpu-remove-redundant-ops",
                   # after the convolution's layout: a level-2 conv + BatchNorm keeps its earlier first candidate
                   "cpu-fuse-batch-norm-train", "cpu-fuse-norm-rescale", "cpu-fuse-scan")
# the algebraic rewrites whose solutions are PyTorch alone (with `fuse_tail` off)
DEVICE_NEUTRAL_RULES = ("cpu-fold-affine-chain", "cpu-fold-conv-global-mean", "cpu-fold-conv-affine",
                        "cpu-compose-pools", "cpu-values-only-reduction")
__all__ = ["BASE_FLAGS", "FLAGS", "FLAG_NAME", "RulesProposer", "gpu_plans", "name_returned_value", "plans"]


def plans(task_source: str) -> list[tuple[str, list[FusedRun | NormRun], list[str]]]:
    """(plan step, runs, skills) for each candidate the rules make for this task (read in the
    form of `name_returned_value`, which `propose` generates from too)."""
    task_source = normalise(task_source)
    try:
        cls = model_class(ast.parse(task_source))
        fwd = forward_of(cls)
    except (ValueError, SyntaxError):
        return []
    norms = find_norm_runs(cls)
    claimed = frozenset(i for r in norms for i in range(r.start, r.stop))
    combined: list[FusedRun | NormRun] = sorted([*norms, *find_fusable_runs(fwd, claimed)], key=lambda r: r.start)
    out = []
    if norms:
        out.append((f"{describe(combined)}: one OpenMP C++ kernel per row / (sample, group) -- statistics "
                    f"pass, then normalise + elementwise in one write; {FLAG_NAME}", combined,
                    NORM_SKILLS + (ELEMENTWISE_SKILLS[:1] if len(combined) > len(norms) else [])
                    + channel_softmax_cards(norms)))
    plain = find_fusable_runs(fwd)
    if plain:
        out.append((f"{describe(plain)} into one OpenMP C++ pass over memory; {FLAG_NAME}", plain,
                    list(ELEMENTWISE_SKILLS)))
    return out


def gpu_plans(task_source: str) -> list[tuple[str, list[FusedRun | NormRun], list[str], str]]:
    """(plan step, runs, skills, backend) for `--device cuda`: the plans of `plans`, the one
    with norms in Triton and the elementwise-only one as CUDA (load_inline); a plan whose
    statements have no GPU form is left out."""

    task_source = normalise(task_source)
    out = []
    for _, runs, _ in plans(task_source):
        if any(isinstance(r, NormRun) for r in runs):
            if supports(task_source, runs, "triton"):
                out.append((f"{describe(runs)}: one Triton program per row / (sample, group) -- statistics, "
                            "then normalise + elementwise in one write", runs, list(GPU_NORM_SKILLS), "triton"))
        elif supports(task_source, runs, "cuda"):
            out.append((f"{describe(runs)} into one grid-stride CUDA kernel per run (load_inline, torch's "
                        "current stream)", runs, list(GPU_ELEMENTWISE_SKILLS), "cuda"))
    return out


def _checked(source: str, found: list[RuleCandidate]) -> list[RuleCandidate]:
    """The templates' files through the registry's check (`registry.checked`): what they
    read from the task carried over; one that cannot be written is dropped."""
    return [c for c in (checked(source, c) for c in found) if not isinstance(c, NoOp)]


def _device(context: dict) -> str:
    cfg = getattr(context.get("target"), "eval_cfg", None)
    return getattr(cfg, "device", "cpu")


class RulesProposer:
    name = "rules"

    def __init__(self, retrieval: bool = True) -> None:
        self.tokens = 0
        self.cost = 0.0
        self.retrieval = retrieval  # False: templates in declaration order (benchmarks/studies/skill_ablation.py)

    def ordered_plans(self, task_source: str) -> list[tuple[str, list[FusedRun | NormRun], list[str]]]:
        """The skill library's retrieval decides which template is tried (evaluated) first."""
        found = plans(task_source)
        if not self.retrieval or len(found) < 2:
            return found

        return order_templates(task_source, found, lambda p: p[2])

    def algebraic(self, task_source: str) -> list[RuleCandidate]:
        """Candidates of the algebraic rules (registry) that apply to this task."""
        t = analyse(task_source)
        if isinstance(t, NoOp):
            return []
        return [c for c in (apply(rule_id, t) for rule_id in ALGEBRAIC_RULES) if not isinstance(c, NoOp)]

    def device_neutral(self, task_source: str) -> list[RuleCandidate]:
        """The algebraic rewrites written in PyTorch alone (no C++ tail), which run on any
        device: proposed for `--device cuda` too."""
        t = analyse(task_source)
        if isinstance(t, NoOp):
            return []
        found = (apply(rule_id, t, {"fuse_tail": False}) for rule_id in DEVICE_NEUTRAL_RULES)
        return [c for c in found if not isinstance(c, NoOp)]

    def candidates(self, task_source: str) -> list[RuleCandidate]:
        """Every CPU candidate, in the order they are tried: algebraic rewrites that remove
        arithmetic, the fusion templates in retrieval order, then algebraic rewrites that
        only remove passes (a scale folded into a GEMM's weights gains nothing when the
        GEMM is bound by reading its weights, as at batch 2)."""
        src = normalise(task_source)
        algebraic = self.algebraic(src)
        fusion = [RuleCandidate(generate(src, runs, FLAGS), step, skills)
                  for step, runs, skills in self.ordered_plans(src)]
        return [c for c in algebraic if c.try_first] + _checked(src, fusion) + \
            [c for c in algebraic if not c.try_first]

    def gpu_candidates(self, task_source: str) -> list[RuleCandidate]:
        """The candidates for `--device cuda`: the device-neutral folds, then the Triton /
        CUDA templates, each with the task's module-level values it reads (level2/83's
        `min_value`) carried over like the CPU ones."""
        src = normalise(task_source)
        folds = [c for c in self.device_neutral(src) if c.try_first]
        kernels = [RuleCandidate(generate_gpu(src, runs, backend), step, skills)
                   for step, runs, skills, backend in gpu_plans(src)]
        return folds + _checked(src, kernels)

    def plan(self, task_source: str) -> list[str]:
        return [c.plan_step for c in self.candidates(task_source)]

    def propose(self, context: dict) -> list[Candidate]:
        parent: Candidate = context["parent"]
        if parent.parent_ids:  # only the reference is expanded: no rule builds on a fused kernel yet
            return []
        src = normalise(context["task_source"])
        meta = {"model": "rules", "tokens_in": 0, "tokens_out": 0, "cost": 0.0}
        found = self.gpu_candidates(src) if _device(context) == "cuda" else self.candidates(src)
        return [Candidate(code=c.code, parent_ids=[parent.id], plan_step=c.plan_step, skills=list(c.skills),
                          proposer=dict(meta)) for c in found]
