"""`--fit auto`: scale a KernelBench task's size constants down to what this machine runs.

Upstream task sizes target datacenter GPUs (some level-1 inputs are several GB). A task's
sizes live in module-level integer constants (`batch_size = 4096`, `dim = 393216`), so
fitting rewrites those literals and nothing else: batch first, then the input-only
("spatial") sizes, then -- only if still too big -- model widths (features, hidden);
structural constants (channels, kernel sizes, groups, strides, heads) are never touched.
Each step is measured in a probe process (`kopt.agent.targets.kernelbench.size_probe`) until inputs plus
outputs fit the memory budget and one reference call takes at most ~50 ms. The sizes
used are recorded; the fitted file keeps the task's file name.
"""
from __future__ import annotations

import ast
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from kopt.agent.errors import EnvironmentMissing, UserInputError

FIT_MODES = ("auto", "none")
BATCH = re.compile(r"(^|_)batch|^bs$|^b$|^n_?samples$|^num_samples$", re.I)
STRUCTURAL = re.compile(r"chan|kernel|group|stride|pad|dilat|head|class|layer(?!_?sizes?$)|vocab|expert|pool|^num_|"
                        r"rank|order|axis|reduce|topk", re.I)
WIDTH = re.compile(r"feature|hidden|embed|width|size|dim|length|units", re.I)
# batch 2, not 1: a training-mode BatchNorm followed by a per-sample mean is exactly zero
# at batch 1 (upstream level 2 #77 turned degenerate when fitted to one sample)
MIN_SIZE = {"batch": 2, "spatial": 8, "width": 16}
FIT_VERSION = 3  # in the cache key: a fit made by older rules is measured again
TIERS = ("batch", "spatial", "width")


@dataclass
class SizeConstant:
    """An integer literal assigned at module level that may set a tensor size."""

    name: str
    value: int
    kind: str  # batch | spatial | width | structural
    span: tuple[int, int, int, int]  # lineno, col, end_lineno, end_col of the value expression


@dataclass
class FitConfig:
    device: str = "cpu"
    memory_mb: float | None = None  # inputs + outputs of one call; default by device
    max_ms: float = 50.0
    threads: int | None = None
    timeout_s: float = 300.0
    params_mb: float | None = None  # the model's weights and buffers; default by device

    def params_budget_mb(self) -> float:
        if self.params_mb:
            return self.params_mb
        return 16384.0 if self.device == "cuda" else 1024.0

    def budget_mb(self) -> float:
        if self.memory_mb:
            return self.memory_mb
        # CPU: every trial moves its inputs and outputs between three processes; past ~24 MiB
        # that traffic, not the task, sets an evaluation's length (96 MiB: ~55 s, 24 MiB: ~14 s)
        return 4096.0 if self.device == "cuda" else 24.0


@dataclass
class FitResult:
    path: Path  # the task file to use (the original when nothing changed)
    changed: bool = False
    sizes: dict[str, list[int]] = field(default_factory=dict)  # name -> [original, used]
    ref_ms: float | None = None
    io_mb: float | None = None
    note: str = ""
    skipped: str | None = None  # why this task cannot run here

    def record(self) -> dict:
        return {"task": str(self.path), "changed": self.changed, "sizes": self.sizes, "ref_ms": self.ref_ms,
                "io_mb": self.io_mb, "note": self.note, "skipped": self.skipped}


def _int_value(node: ast.AST) -> int | None:
    """The value of an integer literal or literal arithmetic (`1024 * 4`, `2 ** 14`)."""
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.FloorDiv, ast.Pow,
                                                            ast.LShift)):
        a, b = _int_value(node.left), _int_value(node.right)
        if a is None or b is None or (isinstance(node.op, (ast.Pow, ast.LShift)) and b > 64):
            return None
        ops = {ast.Add: int.__add__, ast.Sub: int.__sub__, ast.Mult: int.__mul__, ast.FloorDiv: int.__floordiv__,
               ast.Pow: int.__pow__, ast.LShift: int.__lshift__}
        try:
            return ops[type(node.op)](a, b)
        except ZeroDivisionError:
            return None
    return None


def _names_in(tree: ast.Module, func: str) -> set[str]:
    """Names `func` reads, directly or through module-level assignments (`shape = (b, n)`)."""
    assigned = {}
    for node in tree.body:
        if isinstance(node, ast.Assign):
            used = {n.id for n in ast.walk(node.value) if isinstance(n, ast.Name)}
            for t in node.targets:
                for n in ast.walk(t):
                    if isinstance(n, ast.Name):
                        assigned.setdefault(n.id, set()).update(used)
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == func:
            names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
    todo = list(names)
    while todo:
        for used in assigned.get(todo.pop(), ()):
            if used not in names:
                names.add(used)
                todo.append(used)
    return names


def classify(name: str, in_inputs: bool, in_init: bool) -> str:
    """batch | spatial (shapes inputs only) | width (a model size) | structural (never scaled)."""
    if not in_init:
        if BATCH.search(name):
            return "batch"
        if in_inputs and not STRUCTURAL.search(name):
            return "spatial"
        return "structural"
    if STRUCTURAL.search(name) or name.lower() in ("dim", "k") or BATCH.search(name):
        return "structural"
    if WIDTH.search(name) or re.fullmatch(r"[MNLDHW]", name):
        return "width"
    return "structural"


KIND_ORDER = ("structural", "width", "spatial", "batch")  # most careful first


def _kind(name: str, in_inputs: set[str], in_init: set[str]) -> str:
    if name not in in_inputs | in_init:
        return "structural"  # not a size of anything we can see
    return classify(name, name in in_inputs, name in in_init)


def size_constants(source: str) -> list[SizeConstant]:
    """Module-level integer constants, each with its kind (pure: an AST read)."""
    tree = ast.parse(source)
    in_inputs, in_init = _names_in(tree, "get_inputs"), _names_in(tree, "get_init_inputs")
    out = []
    seq = (ast.Tuple, ast.List)
    for node in tree.body:
        if not isinstance(node, ast.Assign):
            continue
        value = node.value
        if len(node.targets) > 1:  # `height = width = 256`: one literal, every name's kind counts
            if not all(isinstance(t, ast.Name) for t in node.targets):
                continue
            ids = [t.id for t in node.targets]
            kinds = [_kind(i, in_inputs, in_init) for i in ids]
            pairs = [("=".join(ids), min(kinds, key=KIND_ORDER.index), value)]
        elif isinstance(node.targets[0], ast.Tuple):
            target = node.targets[0]
            if not isinstance(value, ast.Tuple) or len(target.elts) != len(value.elts):
                continue
            pairs = [(t.id, _kind(t.id, in_inputs, in_init), v) for t, v in zip(target.elts, value.elts)
                     if isinstance(t, ast.Name)]
        elif isinstance(node.targets[0], ast.Name):
            pairs = [(node.targets[0].id, _kind(node.targets[0].id, in_inputs, in_init), value)]
        else:
            continue
        for base, kind, v in pairs:
            # `input_shape = (4096, 128)`, `layer_sizes = [400, 800]`: each element is a size of its own
            items = [(f"{base}[{i}]", e) for i, e in enumerate(v.elts)] if isinstance(v, seq) else [(base, v)]
            for name, e in items:
                n = _int_value(e)
                if n is not None and n >= 1:
                    out.append(SizeConstant(name, n, kind, (e.lineno, e.col_offset, e.end_lineno, e.end_col_offset)))
    return out


def rewrite(source: str, constants: list[SizeConstant], sizes: dict[str, int]) -> str:
    """The source with the named constants' value expressions replaced by new integers."""
    lines = source.splitlines(keepends=True)
    todo = sorted((c for c in constants if c.name in sizes and sizes[c.name] != c.value),
                  key=lambda c: c.span, reverse=True)
    for c in todo:
        l0, c0, l1, c1 = c.span
        head = lines[l0 - 1][:c0]
        tail = lines[l1 - 1][c1:]
        lines[l0 - 1:l1] = [f"{head}{sizes[c.name]}{tail}"]
    return "".join(lines)


def next_step(constants: list[SizeConstant], sizes: dict[str, int], frozen: set[str],
              kinds: tuple[str, ...] = TIERS) -> dict[str, int] | None:
    """The next smaller sizes: halve the batch while it is above 8, then the input-only
    sizes together, then the batch down to 2, then model widths (only those of `kinds`).
    None when nothing is left."""
    def shrinkable(kind: str, floor: int) -> list[SizeConstant]:
        return [c for c in constants if c.kind == kind and c.name not in frozen and sizes[c.name] // 2 >= floor]

    for kind, floor in (("batch", 8), ("spatial", MIN_SIZE["spatial"]), ("batch", MIN_SIZE["batch"]),
                        ("width", MIN_SIZE["width"])):
        if kind not in kinds:
            continue
        group = shrinkable(kind, floor)
        if group:
            return {**sizes, **{c.name: sizes[c.name] // 2 for c in group}}
    return None


def cache_key(source: str, cfg: FitConfig) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        torch_version = version("torch")
    except PackageNotFoundError:
        torch_version = "none"
    blob = json.dumps([FIT_VERSION, source, cfg.device, cfg.budget_mb(), cfg.params_budget_mb(), cfg.max_ms,
                       cfg.threads, torch_version])
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def _cache_file(key: str) -> Path:
    from kopt.sandboxes.native import cache_root

    return cache_root() / "fit" / f"{key}.json"


def fit_task(task: str | Path, out_dir: Path | None, cfg: FitConfig | None = None) -> FitResult:
    """Fit TASK to this machine. Writes the fitted file (same file name) under `out_dir`
    when sizes change; reuses an already fitted file there (a resumed run keeps its sizes).
    Never raises for a task that cannot run here: `skipped` says why."""
    from kopt.sandboxes.kernelbench_tasks import load_task

    cfg = cfg or FitConfig()
    t = load_task(task)
    if out_dir is not None and (out_dir / "fit.json").exists():
        rec = json.loads((out_dir / "fit.json").read_text())
        if rec.get("skipped") or Path(rec["task"]).exists():
            return FitResult(Path(rec["task"]), rec["changed"], rec["sizes"], rec.get("ref_ms"), rec.get("io_mb"),
                             rec.get("note", ""), rec.get("skipped"))
    constants = size_constants(t.source)
    key = cache_key(t.source, cfg)
    cached = _cache_file(key)
    if cached.exists():
        probe = json.loads(cached.read_text())
    else:
        from kopt.agent.targets.kernelbench.size_probe import run_probe

        probe = run_probe({"kind": "fit", "source": t.source, "path": str(t.path), "device": cfg.device,
                           "budget_mb": cfg.budget_mb(), "params_mb": cfg.params_budget_mb(), "max_ms": cfg.max_ms},
                          cfg.threads, cfg.timeout_s)
        if not probe.get("transient"):
            cached.parent.mkdir(parents=True, exist_ok=True)
            cached.write_text(json.dumps(probe))
    if probe.get("error"):
        res = FitResult(t.path, skipped=probe["error"])
    else:
        sizes = {c.name: [c.value, probe["sizes"][c.name]] for c in constants
                 if probe["sizes"].get(c.name, c.value) != c.value}
        res = FitResult(t.path, bool(sizes), sizes, probe.get("ref_ms"), probe.get("io_mb"), probe.get("note", ""))
        if sizes and out_dir is not None:
            fitted = out_dir / "task" / t.path.name
            fitted.parent.mkdir(parents=True, exist_ok=True)
            fitted.write_text(rewrite(t.source, constants, {k: v[1] for k, v in sizes.items()}))
            res.path = fitted.resolve()
        elif sizes:
            raise UserInputError("fitting a task needs a folder for the fitted copy (--run-dir)")
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "fit.json").write_text(json.dumps(res.record(), indent=2))
    return res


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def fit_or_fail(task: str | Path, mode: str, device: str, out_dir: Path | None) -> tuple[Path, FitResult | None]:
    """For `kopt eval` / `kopt optimize --fit`: the task to use, or a one-line error when it
    cannot run here (exit 3 for a missing GPU, download or library; 2 otherwise)."""
    if mode not in FIT_MODES:
        raise UserInputError(f"unknown --fit {mode!r}; use auto or none")
    if mode == "none" or (device == "cuda" and not _cuda_available()):
        return Path(task), None  # without a GPU the evaluator says so in its own words
    if out_dir is None:
        from kopt.sandboxes.native import cache_root

        out_dir = cache_root() / "fit" / "tasks" / hashlib.sha256(str(Path(task).resolve()).encode()).hexdigest()[:16]
        if (out_dir / "fit.json").exists():
            (out_dir / "fit.json").unlink()  # the task may have changed since: the size cache decides
    res = fit_task(task, out_dir, FitConfig(device=device))
    if res.skipped:
        environment = re.search(r"cuda|gpu|download|offline|connection|no module named|not installed", res.skipped,
                                re.I)
        cls = EnvironmentMissing if environment else UserInputError
        raise cls(f"the task cannot run here: {res.skipped} (use --fit none to try anyway)")
    return res.path, res


def describe(sizes: dict[str, list[int]]) -> str:
    return ", ".join(f"{k} {a}->{b}" for k, (a, b) in sizes.items()) or "as written"


def fit_for_optimize(target: Path, mode: str, device: str, run_dir: Path | None, resume: bool,
                     kind: str | None) -> tuple[Path, Path | None]:
    """`kopt optimize --fit`: (task to optimize, run dir). The fitted copy lives in the run
    dir, so `--resume` continues with the same sizes. Programs and repos are left alone."""
    import time

    from kopt.agent.runs.store import STORE_FILE
    from kopt.agent.targets import detect_kind

    if mode not in FIT_MODES:
        raise UserInputError(f"unknown --fit {mode!r}; use auto or none")
    target = Path(target)
    if mode == "none" or not target.is_file() or (kind or detect_kind(target)) != "kernelbench":
        return target, run_dir
    run_dir = run_dir or Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-{target.stem}"
    if not resume and (run_dir / STORE_FILE).exists():
        return target, run_dir  # run_optimize says the folder is taken
    return fit_or_fail(target, mode, device, run_dir)[0], run_dir
