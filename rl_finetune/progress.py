"""What a training run leaves to look at: metrics.csv (one row a step, flushed as it goes, so a crash
keeps everything up to it), training.png (reward, KL, entropy and throughput against steps) and,
on a terminal, a live table."""
from __future__ import annotations

import csv
import math
from pathlib import Path

COLUMNS = ("step", "reward", "reward_std", "reward_max", "pass_rate", "kl", "entropy", "loss", "clip_frac",
           "zero_adv_frac", "prompts", "completions", "completion_tokens", "completions_per_s", "gen_s",
           "reward_s", "update_s", "step_s")


class MetricsCSV:
    """Appends one row a step. On resume, rows after the checkpoint's step are dropped (they will be redone)."""

    def __init__(self, path: Path, truncate_after: int = 0):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept = [r for r in read_metrics(self.path) if r["step"] <= truncate_after] if truncate_after else []
        self.fh = self.path.open("w", newline="", encoding="utf-8")
        self.writer = csv.DictWriter(self.fh, fieldnames=COLUMNS, extrasaction="ignore")
        self.writer.writeheader()
        for r in kept:
            self.writer.writerow(r)
        self.fh.flush()

    def write(self, metrics: dict) -> None:
        self.writer.writerow({k: _fmt(metrics.get(k)) for k in COLUMNS})
        self.fh.flush()

    def close(self) -> None:
        self.fh.close()


def _fmt(v):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return f"{v:.6g}" if isinstance(v, float) else v


def read_metrics(path: Path) -> list[dict]:
    path = Path(path)
    if not path.exists():
        return []
    with path.open(newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if None not in r and None not in r.values()]  # skip torn rows
    nan = float("nan")
    return [{k: (float(v) if v != "" else nan) for k, v in row.items()} | {"step": int(row["step"])} for row in rows]


def plot_metrics(csv_path: Path, png_path: Path) -> Path | None:
    """Four panels against the step; None (and no file) without matplotlib or without rows."""
    rows = read_metrics(csv_path)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    if not rows:
        return None
    steps = [r["step"] for r in rows]
    fig, axes = plt.subplots(2, 2, figsize=(10, 6.5), sharex=True)
    panels = [("reward", "reward (mean of the step's completions)"), ("kl", "KL to the reference"),
              ("entropy", "policy entropy per token"), ("completions_per_s", "completions / second")]
    for ax, (key, title) in zip(axes.flat, panels):
        ys = [r.get(key, float("nan")) for r in rows]
        if all(math.isnan(y) for y in ys):
            ax.text(0.5, 0.5, "not measured" + (" (no reference: beta=0, no LoRA)" if key == "kl" else ""),
                    ha="center", va="center", transform=ax.transAxes, color="gray")
        ax.plot(steps, ys, lw=0.8, alpha=0.5)
        if len(ys) >= 10 and key == "reward":
            w = max(2, len(ys) // 20)
            smooth = [sum(ys[max(0, i - w + 1):i + 1]) / len(ys[max(0, i - w + 1):i + 1]) for i in range(len(ys))]
            ax.plot(steps, smooth, lw=1.8)
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    for ax in axes[1]:
        ax.set_xlabel("step")
    fig.tight_layout()
    png_path = Path(png_path)
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
    return png_path


class LiveView:
    """A rich table of the latest logged steps, redrawn in place on a terminal; plain lines elsewhere."""

    KEYS = (("step", "{:.0f}"), ("reward", "{:.3f}"), ("pass_rate", "{:.2f}"), ("kl", "{:.4f}"),
            ("entropy", "{:.3f}"), ("loss", "{:.4f}"), ("completions_per_s", "{:.1f}"), ("step_s", "{:.2f}"))

    def __init__(self, title: str, total_steps: int, rows: int = 12):
        from rich.console import Console

        self.console = Console(stderr=True)
        self.title, self.total, self.keep = title, total_steps, rows
        self.rows: list[dict] = []
        self.live = None
        if self.console.is_terminal:
            from rich.live import Live

            self.live = Live(self._table(), console=self.console, refresh_per_second=4)
            self.live.start()

    def _table(self):
        from rich.table import Table

        t = Table(title=f"{self.title}  (step {self.rows[-1]['step'] if self.rows else 0}/{self.total})")
        for k, _ in self.KEYS:
            t.add_column(k.replace("completions_per_s", "compl/s"), justify="right")
        for r in self.rows[-self.keep:]:
            t.add_row(*(_cell(r.get(k), f) for k, f in self.KEYS))
        return t

    def __call__(self, metrics: dict) -> None:
        self.rows.append(metrics)
        if self.live is not None:
            self.live.update(self._table())
        else:
            self.console.print("  ".join(f"{k}={_cell(metrics.get(k), f)}" for k, f in self.KEYS), markup=False,
                               highlight=False, soft_wrap=True)

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()


def _cell(v, fmt: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return fmt.format(v)
