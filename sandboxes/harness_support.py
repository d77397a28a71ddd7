"""The worker's plumbing that is not about the candidate: loading a task or solution,
making inputs in other shapes and distributions, seeding each forward, error texts."""
from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import traceback

from kopt.sandboxes import protocol, sealed_inputs
from kopt.sandboxes.run_confinement import Confinement


def reshape_distribution(torch, x, dist: str, seed: int):
    """The task's own input, re-shaped in distribution: heavy-tailed (log-normal factors),
    large (x100) or small (x1e-3) magnitudes. Integer inputs (indices, labels) stay as they are."""
    if not (isinstance(x, torch.Tensor) and x.is_floating_point() and x.numel()):
        return x
    if dist == "large":
        return x * 100.0
    if dist == "small":
        return x * 1e-3
    if dist == "heavy":
        gen = torch.Generator().manual_seed(seed + 2)
        return x * torch.exp(torch.randn(x.shape, generator=gen) * 1.5).to(x.device, x.dtype)
    return x


class Seeded:
    """The model, seeded right before each forward from the seed kopt sends with the call
    (`base + k` for the k-th input set), the same on both sides: a stochastic forward
    (dropout in training mode) draws the same numbers in the reference and the candidate."""

    def __init__(self, torch, model, seeds: list | None):
        self.torch, self.model, self.seeds, self.k = torch, model, seeds, 0

    def __call__(self, *x):
        if self.seeds is not None:
            self.torch.manual_seed(self.seeds[self.k % len(self.seeds)])
        self.k += 1
        return self.model(*x)


def load_module(path: str, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def classify_setup_error(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, SyntaxError) or "Error building extension" in text or "CompileError" in text \
            or type(exc).__name__ == "CalledProcessError" or "error: " in text and "g++" in text:
        return "compile_error"
    return "runtime_error"


def error_text(exc: BaseException, limit: int = 3000) -> str:
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    if isinstance(exc, MemoryError) or "DefaultCPUAllocator: can't allocate memory" in tb \
            or "std::bad_alloc" in tb:
        tb = "memory limit exceeded: " + tb
    return tb[-limit:]


def scalable_constants(module) -> dict[str, int]:
    """Integer module constants that shape the inputs but not the model."""

    def names(code) -> set[str]:
        out = set(code.co_names)
        for const in code.co_consts:
            if hasattr(const, "co_names"):
                out |= names(const)
        return out

    used_by_inputs = names(module.get_inputs.__code__)
    used_by_init = names(module.get_init_inputs.__code__)
    return {k: v for k, v in vars(module).items()
            if k in used_by_inputs and k not in used_by_init and type(v) is int and v >= 4}


def param_signature(torch, params: list) -> list:
    """Each floating parameter's shape and a digest of its values ([shape..., digest]). The
    re-initialised-weights trial re-draws the parameters both sides hold alike, shape and
    values (eval_trials.param_pairs): a correct ModelNew registering two same-shaped layers in
    the other order was given the wrong layer's weights by position, and failed (red team 4);
    one extra parameter switched the trial off for a forward that ignored its own (red team 8)."""
    out = []
    for p in params:
        digest = hashlib.sha256(p.detach().reshape(-1).cpu().view(torch.uint8).numpy().tobytes())
        out.append([*p.shape, int(digest.hexdigest()[:12], 16)])
    return out


def confine_reads() -> None:
    """A CPU worker reads nothing that shows which host file pages are cached (/proc, the
    cgroup and NUMA counters, getrusage: run_confinement.py), set before any thread starts so
    every later thread inherits it. Red team 10: a candidate read another evaluation's bits
    from the page cache through fault-around and /proc/self/pagemap. A GPU worker is left
    as it is: the driver reads /proc."""
    if os.environ.get("KOPT_CONFINE_READS") == "1":
        confinement = Confinement()
        try:
            confinement.apply()
        finally:
            confinement.close()


def pin_threads(cpus: list[int]) -> None:
    """Every thread of this process (those torch's import made too) onto `cpus`. Under the
    jail's seccomp filter the call fails: kopt pins the worker from outside instead."""
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:  # confined (confine_reads): kopt pins from outside
        return
    for tid in tids:
        try:
            os.sched_setaffinity(int(tid), cpus)
        except (PermissionError, ProcessLookupError):
            pass


def contiguous(obj, torch):
    """Outputs with every tensor contiguous (lists, tuples and dicts kept as they are), made once
    before the reference's echoes: a reference returning a view put its layout copy into the echo
    figure kopt subtracts from both sides, so a candidate paying that copy in `forward` had it
    subtracted for free (3.6x slower, read 1.50x). The first echo pays it; the median does not see it."""
    if isinstance(obj, torch.Tensor):
        return obj if obj.is_contiguous() else obj.contiguous()
    if type(obj) in (list, tuple):
        return type(obj)(contiguous(v, torch) for v in obj)
    if type(obj) is dict:
        return {k: contiguous(v, torch) for k, v in obj.items()}
    return obj


def pristine_inputs(worker) -> list:
    """The last call's input sets as kopt sent them, as fresh tensors: a forward may have written
    into those it was given (an in-place update of an input)."""
    if worker.mapped is None:
        return protocol.decode(worker.payload, worker.torch)
    return sealed_inputs.reread(worker.inputs_fd, worker.torch)
