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

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from kopt.agent.errors import EnvironmentMissing, UserInputError
from kopt.agent.runs.store import STORE_FILE
from kopt.agent.targets.kernelbench.size_probe import run_probe
from kopt.agent.targets.kernelbench.sizes import rewrite, size_constants
from kopt.agent.targets.kinds import detect_kind
from kopt.sandboxes.kernelbench_tasks import load_task
from kopt.sandboxes.native import cache_root

FIT_MODES = ("auto", "none")
FIT_VERSION = 6  # in the cache key: a fit by older rules is measured again (6: meta budget, unqueued clock)
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
    return cache_root() / "fit" / f"{key}.json"


def fit_task(task: str | Path, out_dir: Path | None, cfg: FitConfig | None = None) -> FitResult:
    """Fit TASK to this machine. Writes the fitted file (same file name) under `out_dir`
    when sizes change; reuses an already fitted file there (a resumed run keeps its sizes).
    Never raises for a task that cannot run here: `skipped` says why."""

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

    if mode not in FIT_MODES:
        raise UserInputError(f"unknown --fit {mode!r}; use auto or none")
    target = Path(target)
    if mode == "none" or not target.is_file() or (kind or detect_kind(target)) != "kernelbench":
        return target, run_dir
    run_dir = run_dir or Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-{target.stem}"
    if not resume and (run_dir / STORE_FILE).exists():
        return target, run_dir  # run_optimize says the folder is taken
    return fit_or_fail(target, mode, device, run_dir)[0], run_dir
