"""Rule `cpu-swap-submodules`: the rules' module kernels (BatchNorm in training mode,
MaxPool / AvgPool) applied across a whole model -- inside nn.Sequential, nn.ModuleList and
the task's own block classes (a ResNet's BasicBlock), which a rewrite of `Model.forward`
cannot reach. Level-3 models are built that way (upstream level-3 VGG, ResNet, MobileNet,
EfficientNet, DenseNet).

    class ModelNew(nn.Module):
        def __init__(self, ...):
            ...                        # the task's construction, unchanged (same weights)
            _kopt_swap_modules(self)   # every BatchNorm / pooling below self -> a kernel module

The walk runs once, after construction (no random numbers drawn, so the weights are the
Model's). Each swapped module keeps the original as its child `inner`: parameters, buffers,
`train()` / `eval()` reach it, and the kernels fall back to it for whatever they do not cover
(eval mode, autograd, other dtypes).
"""
from __future__ import annotations

import ast
import re

from kopt.agent.proposers.rules import batch_norm_train, pooling
from kopt.agent.proposers.rules.build_flags import BASE_FLAGS, FLAGS
from kopt.agent.proposers.rules.forward_analysis import model_class

KINDS = re.compile(r"\bnn\.(BatchNorm[123]d|MaxPool[123]d|AvgPool[123]d)\(")
CONTAINERS = re.compile(r"\bnn\.(Sequential|ModuleList|ModuleDict)\(")

SWAP = '''
class _KoptKernelModule(torch.nn.Module):
    """A submodule run by one of the rules' kernels; `inner` is the original, which the kernel
    falls back to."""

    def __init__(self, inner, kernel):
        super().__init__()
        self.inner = inner
        self._kernel = kernel

    def forward(self, x):
        return self._kernel(self.inner, x)


_KOPT_SWAPS = {
    **{getattr(torch.nn, f"BatchNorm{n}d"): _kopt_batch_norm for n in (1, 2, 3)},
    **{getattr(torch.nn, f"{kind}Pool{n}d"): _kopt_pool for kind in ("Max", "Avg") for n in (1, 2, 3)},
}


def _kopt_swap_modules(root):
    """Every BatchNorm / pooling module below ROOT (containers and blocks included) by a
    kernel module holding it; the number swapped."""
    swapped = 0
    for name, child in list(root.named_children()):
        kernel = _KOPT_SWAPS.get(type(child))
        if kernel is not None:
            setattr(root, name, _KoptKernelModule(child, kernel))
            swapped += 1
        elif not isinstance(child, _KoptKernelModule):
            swapped += _kopt_swap_modules(child)
    return swapped
'''


def rewrite(task_source: str) -> tuple[str, list[str], str] | None:
    """(the task's source, class still `Model`, with `_kopt_swap_modules(self)` at the end of
    its `__init__`; the module kinds found; the helpers to paste), or None where the model
    builds none of them inside a container or another class (the direct rules cover a module
    that `forward` calls itself)."""
    kinds = sorted(set(KINDS.findall(task_source)))
    tree = ast.parse(task_source)
    classes = [n for n in tree.body if isinstance(n, ast.ClassDef)]
    if not kinds or not (CONTAINERS.search(task_source) or len(classes) > 1):
        return None
    try:
        cls = model_class(tree)
    except ValueError:
        return None
    init = next((n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
    if init is None or not init.args.args:
        return None
    me = init.args.args[0].arg
    call = ast.Expr(ast.Call(ast.Name("_kopt_swap_modules", ast.Load()), [ast.Name(me, ast.Load())], []))
    init.body.append(ast.fix_missing_locations(call))
    helpers = "\n".join([batch_norm_train.HELPER.replace("{flags}", repr(tuple(FLAGS))),
                         pooling.HELPER.replace("{flags}", repr(tuple(BASE_FLAGS))), SWAP])
    return ast.unparse(tree) + "\n", kinds, helpers
