"""Every rule of the `rules` proposer, addressable by its skill card's id.

    analysis = analyse(task_source)            # TaskAnalysis, or NoOp when forward is unreadable
    result = apply("cpu-fold-affine-chain", analysis, {})
    # -> RuleCandidate(code, plan_step, skills): a whole solution file defining ModelNew
    # -> NoOp(reason): the rule does not apply to this task, and why

A rule only writes a candidate; whether it is correct and faster is the evaluator's
verdict, as for any other proposer. `rule_ids()` lists the rules in the order the
proposer tries them when retrieval does not reorder them.
"""
from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace

from kopt.agent.proposers.rules import (
    batch_norm_train,
    channels_last,
    conv_affine,
    conv_mean,
    cross_entropy,
    dim_reduction,
    full_reduction,
    fused_scan,
    module_swap,
    norm_rescale,
    pool_chain,
    pool_fusion,
    pooling,
    redundant_ops,
    triplet_loss,
    values_reduction,
)
from kopt.agent.proposers.rules.affine_analysis import find_affine_regions
from kopt.agent.proposers.rules.affine_codegen import HELPERS as AFFINE_HELPERS
from kopt.agent.proposers.rules.affine_codegen import rewrite, with_helpers
from kopt.agent.proposers.rules.build_flags import FLAG_NAME, FLAGS
from kopt.agent.proposers.rules.carry_over import carry_over, undefined_names
from kopt.agent.proposers.rules.cpu_codegen import describe, generate, rewrite_forward
from kopt.agent.proposers.rules.cpu_norm_analysis import find_norm_runs
from kopt.agent.proposers.rules.forward_analysis import find_fusable_runs, forward_of, model_class
from kopt.agent.proposers.rules.named_return import normalise
from kopt.agent.proposers.rules.softmax_channels import channel_softmax_cards


@dataclass(frozen=True)
class NoOp:
    """A rule that does not apply, with the reason (one line)."""

    reason: str

    def __bool__(self) -> bool:
        return False


@dataclass(frozen=True)
class RuleCandidate:
    code: str  # the solution file (defines ModelNew)
    plan_step: str  # what the rule did, for the run's report
    skills: list[str] = field(default_factory=list)  # card ids applied
    try_first: bool = False  # tried before the fusion templates: removes arithmetic or changes the algorithm


@dataclass(frozen=True)
class TaskAnalysis:
    """The task as the rules read it: its source with `return f(x)` named (see
    `named_return`), the Model class and its forward."""

    source: str
    cls: ast.ClassDef
    forward: ast.FunctionDef


def analyse(task_source: str) -> TaskAnalysis | NoOp:
    src = normalise(task_source)
    try:
        cls = model_class(ast.parse(src))
        return TaskAnalysis(src, cls, forward_of(cls))
    except SyntaxError as e:
        return NoOp(f"the task does not parse ({e.msg}, line {e.lineno})")
    except ValueError as e:
        return NoOp(f"the task has {e}")


@dataclass(frozen=True)
class Rule:
    card_id: str
    summary: str
    build: Callable[[TaskAnalysis, dict], RuleCandidate | NoOp]


def _rename_only(source: str) -> str:
    """The task's source with Model renamed ModelNew (forward as written)."""
    header, cls = rewrite_forward(source, [], lambda run, stmts: stmts)
    return "\n".join(header) + "\n\n\n" + ast.unparse(cls) + "\n"


def _then_fuse_tail(src: str, options: dict, step: str, skills: list[str], first: bool,
                    helpers: str | None = None, norms: bool = False) -> RuleCandidate:
    """A rewrite's candidate, with the elementwise runs left in its forward fused into one
    OpenMP C++ pass (unless `fuse_tail` is off), and with `norms` the norm / softmax runs
    with their neighbours too; `helpers` go before the class."""
    tail = []
    if options.get("fuse_tail", True):
        cls = model_class(ast.parse(src))
        found = find_norm_runs(cls) if norms else []
        claimed = frozenset(i for r in found for i in range(r.start, r.stop))
        tail = sorted([*found, *find_fusable_runs(forward_of(cls), claimed)], key=lambda r: r.start)
    code = generate(src, tail, FLAGS) if tail else _rename_only(src)
    code = with_helpers(code, helpers) if helpers is not None else code
    if tail:
        step, skills = f"{step}; then {describe(tail)} into one OpenMP C++ pass; {FLAG_NAME}", \
            [*skills, "cpu-fuse-elementwise-chain"]
    return RuleCandidate(code, step, skills, first)


def _fold_affine(t: TaskAnalysis, options: dict) -> RuleCandidate | NoOp:
    regions = find_affine_regions(t.forward, t.cls)
    if not regions:
        return NoOp("no Linear/matmul followed by an affine step (scale, shift, sum/mean over the features, "
                    "another Linear)")
    src = rewrite(t.source, t.cls, t.forward, regions)
    step = "; ".join(f"fold {r.summary()} ({r.stop - r.start} statements) into one GEMM with weights "
                     "folded at construction" for r in regions)
    cuts = any(s.kind == "reduce" or (s.kind in ("linear", "linear_t") and k) for r in regions
               for k, s in enumerate(r.steps))
    return _then_fuse_tail(src, options, step, ["cpu-fold-affine-chain"], cuts, AFFINE_HELPERS)


def _fold_conv_mean(t: TaskAnalysis, options: dict) -> RuleCandidate | NoOp:
    regions = conv_mean.find_conv_means(t.forward, t.cls)
    if not regions:
        return NoOp("no convolution whose output is averaged (or summed) over space, with at most "
                    "scalar / per-channel arithmetic in between")
    src = conv_mean.rewrite(t.source, regions)
    step = "; ".join(f"{r.op} over space of {r.conv}'s output from window sums of its input "
                     f"({r.stop - r.start} statements, no convolution)" for r in regions)
    return RuleCandidate(with_helpers(_rename_only(src), conv_mean.HELPER), step, ["cpu-fold-conv-global-mean"],
                         try_first=True)


def _fold_conv_affine(t: TaskAnalysis, options: dict) -> RuleCandidate | NoOp:
    regions = conv_affine.find_conv_affine(t.forward, t.cls)
    if not regions:
        return NoOp("no convolution followed by a scalar / per-channel multiply, divide, add, subtract or a "
                    "BatchNorm")
    src = conv_affine.rewrite(t.source, regions)
    step = "; ".join(f"fold {r.summary()} ({r.stop - r.start} statements) into one convolution with weights and "
                     "bias folded from the parameters" + (" (BatchNorm only in eval mode)" if r.has_bn else "")
                     for r in regions)
    # a BatchNorm folds only in eval mode: KernelBench's models run in training mode
    first = not any(r.has_bn for r in regions)
    return _then_fuse_tail(src, options, step, ["cpu-fold-conv-affine"], first, conv_affine.HELPER)


def _compose_pools(t: TaskAnalysis, options: dict) -> RuleCandidate | NoOp:
    chains = pool_chain.find_pool_chains(t.forward, t.cls)
    if not chains:
        return NoOp("no two consecutive pooling modules of one kind (MaxPool / AvgPool) on one value")
    src = pool_chain.rewrite(t.source, chains)
    step = "; ".join(f"{' then '.join(c.modules)} as one {c.kind} pooling with the product window "
                     "(strides equal to kernels, read at run time)" for c in chains)
    return _then_fuse_tail(src, options, step, ["cpu-compose-pools"], True, pool_chain.HELPER, norms=True)


def _pool_first(card: str, with_bn: bool, missing: str):
    """A `pool_fusion` rule: its regions (BatchNorm then pooling, or pooling then a mean over
    space) rewritten to pool in one pass first."""
    def build(t: TaskAnalysis, options: dict) -> RuleCandidate | NoOp:
        regions = [r for r in pool_fusion.find_regions(t.forward, t.cls) if bool(r.bn) == with_bn]
        if not regions:
            return NoOp(missing)
        src, helpers, skills = pool_fusion.rewrite(t.source, regions), pool_fusion.HELPER, [card]
        step = "; ".join(r.summary() for r in regions)
        # the convolution before them in channels-last (oneDNN's fast path: upstream level-2 #72's
        # ConvTranspose3d 2.4x, #8's Conv3d 2x on this CPU), its output made contiguous for the pass
        if (layout := channels_last.rewrite(src)) is not None:
            src, helpers, skills = layout[0], helpers + channels_last.HELPERS, [card, "cpu-conv-channels-last"]
            step = f"{step}; {layout[1]}"
        return _then_fuse_tail(src, options, step, skills, True, helpers, norms=True)
    return build


def _separable_pool(t: TaskAnalysis, options: dict) -> RuleCandidate | NoOp:
    found = pooling.rewrite(t.source)
    if found is None:
        return NoOp("no MaxPool / AvgPool 1d/2d/3d module called in forward")
    src, done, helper = found
    step = (f"{', '.join(done)} as one OpenMP C++ pooling kernel, one axis at a time (D, then H, then W: "
            "separable max / sum, each pass a vectorised loop)")
    return _then_fuse_tail(src, options, step, ["cpu-separable-pool"], True, helper, norms=True)


def _swap_submodules(t: TaskAnalysis, options: dict) -> RuleCandidate | NoOp:
    found = module_swap.rewrite(t.source)
    if found is None:
        return NoOp("no BatchNorm / MaxPool / AvgPool module inside an nn.Sequential, a ModuleList or a block class")
    src, kinds, helpers = found
    step = (f"every {', '.join(kinds)} in the model (containers and blocks included) swapped after construction "
            "for a module running the rules' C++ kernel (training-mode BatchNorm, separable pooling)")
    return _then_fuse_tail(src, options, step, ["cpu-swap-submodules"], True, helpers)


def _values_only(t: TaskAnalysis, options: dict) -> RuleCandidate | NoOp:
    found = values_reduction.rewrite(t.source)
    if found is None:
        return NoOp("no torch.max / torch.min over a dim whose indices are thrown away ([0] or .values)")
    src, done = found
    step = f"{'; '.join(dict.fromkeys(done))} as torch.amax / amin (values only, no indices)"
    return _then_fuse_tail(src, options, step, ["cpu-values-only-reduction"], True, values_reduction.HELPER,
                           norms=True)


def _dim_reduction(t: TaskAnalysis, options: dict) -> RuleCandidate | NoOp:
    found = dim_reduction.rewrite(t.source)
    if found is None:
        return NoOp("no max / min (values only), amax, amin, argmax or argmin over a dim in forward")
    src, done, helper = found
    step = f"{'; '.join(dict.fromkeys(done))} as one OpenMP C++ pass (blocks of contiguous positions, no indices " \
        "unless asked for)"
    return _then_fuse_tail(src, options, step, ["cpu-dim-reduction"], True, helper, norms=True)


def _fuse_loss_reduction(t: TaskAnalysis, options: dict) -> RuleCandidate | NoOp:
    red = full_reduction.find_full_reduction(t.forward)
    if red is None:
        return NoOp("forward does not return the mean/sum of an elementwise expression of its inputs")
    span = SimpleNamespace(start=red.start, stop=len(t.forward.body))
    header, cls = rewrite_forward(t.source, [span], lambda run, stmts: full_reduction.forward_body(red))
    code = full_reduction.generate(t.source, red, FLAGS, header, ast.unparse(cls))
    return RuleCandidate(code, f"{red.op} of the elementwise expression of {', '.join(red.inputs)} in one "
                         f"parallel C++ pass, no temporaries; {FLAG_NAME}",
                         ["cpu-fuse-loss-reduction", "cpu-fast-math-simd"], try_first=True)


def _batch_norm_train(t: TaskAnalysis, options: dict) -> RuleCandidate | NoOp:
    found = batch_norm_train.rewrite(t.source, FLAGS)
    if found is None:
        return NoOp("no BatchNorm1d/2d/3d module called in forward")
    src, done, helper, spatial = found
    step = (f"{', '.join(done)} (training mode) as one OpenMP C++ kernel: batch statistics in one pass, then "
            f"normalise + affine in one write; {FLAG_NAME}")
    # only BatchNorm1d (2-D inputs after a Linear, left to the module): after the fusion templates
    return _then_fuse_tail(src, options, step, ["cpu-fuse-batch-norm-train"], spatial, helper)


def _norm_rescale(t: TaskAnalysis, options: dict) -> RuleCandidate | NoOp:
    found = norm_rescale.rewrite(t.source, FLAGS)
    if found is None:
        return NoOp("forward does not return its input divided by a norm / mean of itself (x / torch.norm(x, ...), "
                    "x / sqrt(mean(x ** 2, dim, keepdim=True) + eps), ...)")
    src, r, helper = found
    over = f"dim {r.dim}" if r.dim is not None else "every element"
    step = (f"{r.var} divided by a {'mean' if r.mean else 'sum'} over {over} of {r.f} in one blocked OpenMP C++ "
            f"pass (reduce and rescale each block in cache); {FLAG_NAME}")
    return RuleCandidate(with_helpers(_rename_only(src), helper), step, ["cpu-fuse-norm-rescale"], try_first=True)


def _fuse_scan(t: TaskAnalysis, options: dict) -> RuleCandidate | NoOp:
    found = fused_scan.rewrite(t.source, FLAGS)
    if found is None:
        return NoOp("forward does not return a cumsum / cumprod of a flipped (reverse scan) or masked (x * mask) input")
    src, s, helper = found
    what = " and ".join(w for w, on in (("reversed", s.reverse), (f"masked by {s.mask}", s.mask)) if on)
    step = f"{s.op} of {s.x} {what} along dim {s.dim} as one C++ scan (no flipped / masked copies); {FLAG_NAME}"
    return RuleCandidate(with_helpers(_rename_only(src), helper), step, ["cpu-fuse-scan"], try_first=True)


def _cross_entropy(t: TaskAnalysis, options: dict) -> RuleCandidate | NoOp:
    found = cross_entropy.rewrite(t.source, FLAGS)
    if found is None:
        return NoOp("forward does not return F.cross_entropy(logits, targets) (reduction mean / sum, no other options)")
    src, ce, helper = found
    step = (f"cross entropy of {ce.logits} against {ce.targets} ({ce.reduction}) in one C++ pass per row (max, "
            f"sum of exp, target logit; no log_softmax written); {FLAG_NAME}")
    return RuleCandidate(with_helpers(_rename_only(src), helper), step, ["cpu-fuse-cross-entropy"], try_first=True)


def _triplet_loss(t: TaskAnalysis, options: dict) -> RuleCandidate | NoOp:
    found = triplet_loss.rewrite(t.source, FLAGS)
    if found is None:
        return NoOp("no nn.TripletMarginLoss module called in forward")
    src, done, helper = found
    step = (f"{', '.join(done)} (TripletMarginLoss) in one C++ pass per row over the three inputs (both distances "
            f"and the hinge in registers); {FLAG_NAME}")
    return RuleCandidate(with_helpers(_rename_only(src), helper), step, ["cpu-fuse-triplet-loss"], try_first=True)


def _conv_channels_last(t: TaskAnalysis, options: dict) -> RuleCandidate | NoOp:
    found = channels_last.rewrite(t.source)
    if found is None:
        return NoOp("no 2-D / 3-D convolution (Conv2d, Conv3d, ConvTranspose2d/3d) in the model")
    src, done = found
    step = f"convolutions in the channels-last memory format: {done}; weights converted at construction"
    # the fused pass reads channels-last tensors in place
    return _then_fuse_tail(src, options, step, ["cpu-conv-channels-last"], True, channels_last.HELPERS)


def _remove_redundant(t: TaskAnalysis, options: dict) -> RuleCandidate | NoOp:
    found = redundant_ops.redundant_statements(t.forward)
    if not found:
        return NoOp("no clamp an earlier activation already bounds, and no renormalised softmax")
    src = redundant_ops.remove(t.source, [i for i, _ in found])
    step = "remove " + "; ".join(why for _, why in found)
    return _then_fuse_tail(src, options, step, ["cpu-remove-redundant-ops"], True)


def _fuse_norms(t: TaskAnalysis, options: dict) -> RuleCandidate | NoOp:
    norms = find_norm_runs(t.cls)
    if not norms:
        return NoOp("no GroupNorm/InstanceNorm/LayerNorm module call or softmax in forward")
    claimed = frozenset(i for r in norms for i in range(r.start, r.stop))
    runs = sorted([*norms, *find_fusable_runs(t.forward, claimed)], key=lambda r: r.start)
    skills = ["cpu-fuse-norm-epilogue", "cpu-fast-math-simd"] + (
        ["cpu-fuse-elementwise-chain"] if len(runs) > len(norms) else []) + channel_softmax_cards(norms)
    step = (f"{describe(runs)}: one OpenMP C++ kernel per row / (sample, group) -- statistics pass, then "
            f"normalise + elementwise in one write; {FLAG_NAME}")
    return RuleCandidate(generate(t.source, runs, FLAGS), step, skills)


def _fuse_elementwise(t: TaskAnalysis, options: dict) -> RuleCandidate | NoOp:
    runs = find_fusable_runs(t.forward)
    if not runs:
        return NoOp("no run of elementwise statements `x = f(x)` in forward")
    return RuleCandidate(generate(t.source, runs, FLAGS),
                         f"{describe(runs)} into one OpenMP C++ pass over memory; {FLAG_NAME}",
                         ["cpu-fuse-elementwise-chain", "cpu-fast-math-simd"])


RULES: dict[str, Rule] = {r.card_id: r for r in (
    Rule("cpu-fold-affine-chain", "a Linear/matmul and the affine steps after it (scales, shifts, sums over "
         "the features, further Linears) as one GEMM with folded weights", _fold_affine),
    Rule("cpu-fold-conv-global-mean", "a convolution followed by a mean/sum over space, computed from window "
         "sums of the input without the convolution", _fold_conv_mean),
    Rule("cpu-fold-conv-affine", "a convolution and the scalar / per-channel affine steps after it (and an "
         "eval-mode BatchNorm) as one convolution with folded weights and bias", _fold_conv_affine),
    Rule("cpu-fuse-batch-norm-pool", "a training-mode BatchNorm then poolings (stride = kernel): batch statistics "
         "and the pooling of the raw values in one pass, the affine on the pooled values",
         _pool_first("cpu-fuse-batch-norm-pool", True, "no BatchNorm2d/3d call followed by pooling modules")),
    Rule("cpu-fuse-pool-global-mean", "[a scalar multiply / divide,] poolings (stride = kernel), then the mean "
         "over space, in one pass writing one number per plane",
         _pool_first("cpu-fuse-pool-global-mean", False, "no pooling modules followed by a mean over space")),
    Rule("cpu-compose-pools", "consecutive max / average poolings whose stride is their kernel as one pooling "
         "with the product window", _compose_pools),
    Rule("cpu-separable-pool", "MaxPool / AvgPool 1d/2d/3d modules as one C++ kernel pooling one axis at a "
         "time (vectorised passes)", _separable_pool),
    Rule("cpu-swap-submodules", "BatchNorm and pooling modules anywhere in the model (Sequential, ModuleList, "
         "block classes) swapped for the C++ kernels after construction", _swap_submodules),
    Rule("cpu-values-only-reduction", "torch.max / torch.min over a dim whose indices are thrown away as "
         "torch.amax / amin", _values_only),
    Rule("cpu-dim-reduction", "max / min values, amax, amin, argmax and argmin over one dim as one C++ pass",
         _dim_reduction),
    Rule("cpu-fuse-loss-reduction", "the mean/sum of an elementwise expression of the inputs (a loss) in one "
         "parallel C++ pass", _fuse_loss_reduction),
    Rule("cpu-fuse-batch-norm-train", "a BatchNorm module in training mode as one C++ kernel: batch statistics "
         "in one pass, normalise + affine in one write", _batch_norm_train),
    Rule("cpu-fuse-norm-rescale", "x divided by a norm / mean of itself (RMSNorm, L1 / L2 / Frobenius "
         "normalisation) as one blocked C++ pass", _norm_rescale),
    Rule("cpu-fuse-scan", "a cumsum / cumprod of a flipped or masked input as one C++ scan (no copies)",
         _fuse_scan),
    Rule("cpu-fuse-cross-entropy", "F.cross_entropy over class indices in one C++ pass per row (no "
         "log_softmax written)", _cross_entropy),
    Rule("cpu-fuse-triplet-loss", "an nn.TripletMarginLoss call in one C++ pass per row over anchor, positive "
         "and negative", _triplet_loss),
    Rule("cpu-conv-channels-last", "2-D / 3-D convolutions on channels-last inputs and weights (oneDNN's fast "
         "path on the CPU)", _conv_channels_last),
    Rule("cpu-remove-redundant-ops", "clamps an earlier activation already bounds, and softmax renormalisation, "
         "removed", _remove_redundant),
    Rule("cpu-fuse-norm-epilogue", "a norm or softmax (last dim, or channels: cpu-fuse-channel-softmax) "
         "fused with the elementwise statements around it",
         _fuse_norms),
    Rule("cpu-fuse-elementwise-chain", "runs of elementwise statements as one OpenMP C++ pass",
         _fuse_elementwise),
)}


def rule_ids() -> list[str]:
    return list(RULES)


def apply(rule_id: str, task_analysis: TaskAnalysis | str, options: dict | None = None) -> RuleCandidate | NoOp:
    """One rule on one task. `task_analysis` may be the task's source; an unknown id is a
    NoOp naming the known ones (never an exception)."""
    rule = RULES.get(rule_id)
    if rule is None:
        return NoOp(f"no rule {rule_id!r}; known rules: {', '.join(RULES)}")
    t = analyse(task_analysis) if isinstance(task_analysis, str) else task_analysis
    if isinstance(t, NoOp):
        return t
    result = rule.build(t, dict(options or {}))
    return result if isinstance(result, NoOp) else checked(t.source, result)


def checked(source: str, candidate: RuleCandidate) -> RuleCandidate | NoOp:
    """The rule's file with what it needs from the code it read (`carry_over`: an earlier
    step's helpers, the task's module-level values its class reads), or the reason it cannot
    be written; a file that would read a name it never defines is no candidate. Every
    candidate the proposer makes passes here, the fusion templates and the GPU ones too."""
    code, why = carry_over(source, candidate.code)
    if code is None:
        return NoOp(why)
    if missing := undefined_names(code):
        return NoOp(f"the rule's solution would read {', '.join(missing[:4])}, which it never defines "
                    f"(a rule bug: reported, not written)")
    if code == candidate.code:
        return candidate
    return RuleCandidate(code, candidate.plan_step, candidate.skills, candidate.try_first)


def ordered(task_analysis: TaskAnalysis | str, options: dict | None = None) -> list[tuple[str, RuleCandidate]]:
    """(rule id, candidate) for every rule that applies, in the order worth trying them
    without retrieval (as the proposer does): rewrites marked `try_first` (they remove
    arithmetic or change the algorithm), the fusion templates, then the rest (a fold that
    only removes passes). A plan's default first step is `[0]`."""
    t = analyse(task_analysis) if isinstance(task_analysis, str) else task_analysis
    if isinstance(t, NoOp):
        return []
    found = [(rule_id, apply(rule_id, t, options)) for rule_id in RULES]
    found = [(rule_id, c) for rule_id, c in found if not isinstance(c, NoOp)]
    fusion = ("cpu-fuse-norm-epilogue", "cpu-fuse-elementwise-chain")
    return [f for f in found if f[1].try_first] + [f for f in found if not f[1].try_first and f[0] in fusion] + \
        [f for f in found if not f[1].try_first and f[0] not in fusion]
