"""`kopt bench` (a whole suite), `kopt runs compare A B` and `kopt runs report RUN`."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from kopt.agent.cli.choices import Device, Executor, Fit
from kopt.agent.cli.failures import fail
from kopt.agent.errors import UserInputError
from kopt.agent.proposers.factory import model_label
from kopt.agent.runs import config_file
from kopt.agent.runs.run_report import write_reports
from kopt.agent.runs.store import STORE_FILE, Store
from kopt.benchmarks.bench_report import compare, write_bench_report
from kopt.benchmarks.bench_results import BENCH_FILE, result_from_store
from kopt.benchmarks.bench_runner import BenchConfig, parse_baselines, run_bench
from kopt.benchmarks.fastp import PS
from kopt.sandboxes.evaluator import EvalConfig

# bench's flags -> the config key each one sets ([bench] is BenchConfig, [eval] its EvalConfig overrides)
BENCH_FLAGS = {**{k: f"bench.{k}" for k in ("level", "tasks", "model", "base_url", "budget", "jobs", "executor",
                                            "address", "fit", "baselines", "device", "include_degenerate")},
               "compile_timeout": "bench.compile_timeout_s"}


class _Progress:
    """A rich progress bar over tasks (running fast_1 in its text) on a terminal, one plain
    line per finished task otherwise, nothing with --json."""

    def __init__(self, quiet: bool):
        from rich.console import Console

        self.quiet = quiet
        self.con = Console(stderr=True, highlight=False, soft_wrap=True)
        self.bar = None
        self.task = None

    def __call__(self, e: dict) -> None:
        if self.quiet:
            return
        if e["type"] == "start":
            cfg = e["config"]
            self.con.print(f"kopt bench: {e['total']} task(s), {e['done']} already finished; model {cfg.model}, "
                           f"budget {cfg.budget}, fit {cfg.fit}, jobs {cfg.jobs} ({cfg.executor}); "
                           f"run dir {e['bench_dir']}", markup=False)
            if self.con.is_terminal:
                from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

                self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                    TimeElapsedColumn(), console=self.con)
                self.bar.start()
                self.task = self.bar.add_task(self._text(e.get("fast_1"), ""), total=e["total"],
                                              completed=e["done"])
        elif e["type"] == "task_start" and self.bar is not None:
            self.bar.update(self.task, description=self._text(None, e["task"], keep=True))
        elif e["type"] == "task_done":
            r = e["result"]
            sp = f"{r['speedup']:.2f}x" if r.get("correct") and r.get("speedup") else "-"
            what = r.get("verdict") if r.get("status") == "done" else r.get("status")
            line = (f"[{e['done']}/{e['total']}] {r['id']}: {what or 'nothing proposed'} {sp}  "
                    f"{(r.get('reason') or '')[:90]}")
            if self.bar is not None:
                self.bar.console.print(line, markup=False)
                self.bar.update(self.task, completed=e["done"], description=self._text(e.get("fast_1"), ""))
            else:
                fast = f"  (fast_1 so far {e['fast_1']:.2f})" if e.get("fast_1") is not None else ""
                self.con.print(line + fast, markup=False)

    def _text(self, fast_1: float | None, running: str, keep: bool = False) -> str:
        if fast_1 is not None or not keep:
            self._fast = "-" if fast_1 is None else f"{fast_1:.2f}"
        return f"fast_1 {self._fast}" + (f"  running {running}" if running else "")

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _print_summary(summary: dict) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table


    con = Console(width=None if sys.stdout.isatty() else 120, highlight=False)
    t = Table(box=box.SIMPLE, pad_edge=False, collapse_padding=True,
              title=f"kopt bench: {summary['model']}, budget {summary['budget']}")
    for header in ("level", "tasks", "correct", *[f"fast_{p:g}" for p in PS[1:]], "geomean", "evals"):
        t.add_column(header, no_wrap=True, min_width=len(header))
    pct = lambda v: "-" if v is None else f"{100 * v:.0f}%"  # noqa: E731
    levels = dict(summary["metrics"])
    if len(levels) == 2:
        levels.pop("all")
    for level, m in levels.items():
        t.add_row(level, str(m["scored"]), pct(m["correct_rate"]), *[pct(m["fast_p"][f"{p:g}"]) for p in PS[1:]],
                  f"{m['geomean_speedup']:.2f}x" if m["geomean_speedup"] else "-", str(m["evaluations"]))
    con.print(t)
    m = summary["metrics"]["all"]
    con.print(f"scored {m['scored']} of {m['tasks']} task(s): {m['skipped']} skipped (cannot run here), "
              f"{m['degenerate_excluded']} degenerate excluded, {m['errors']} error(s); tokens {m['tokens']}, "
              f"cost ${m['cost']:.4f}", markup=False)
    con.print(f"report: {summary['bench_dir']}/report.md, {summary['bench_dir']}/report.html", markup=False)


def register(app: typer.Typer, runs_app: typer.Typer) -> None:
    """Add this module's commands to the `kopt` app (and `kopt runs`)."""

    @app.command("bench")
    def bench(
        ctx: typer.Context,
        suite: Optional[Path] = typer.Argument(None, help="KernelBench checkout, its KernelBench/ folder, a folder "
                                                          "of task files, or a folder of program targets (one "
                                                          "subfolder each, with tests/); not needed with --resume"),
        config: Optional[Path] = typer.Option(None, "--config", help="TOML file of settings ([bench] [eval]); "
                                                                     "flags given override it"),
        level: Optional[int] = typer.Option(None, help="KernelBench level (default: all levels found)"),
        tasks: Optional[str] = typer.Option(None, help="task numbers or names: 1,5,19 or 1-20"),
        model: str = typer.Option("rules", help="rules | openai/<name> | litellm/<provider>/<name> | hf:<path>"),
        base_url: Optional[str] = typer.Option(None, help="OpenAI-compatible server URL (or OPENAI_BASE_URL)"),
        budget: int = typer.Option(1, help="evaluations per task; 1 = one-shot (one proposal, evaluated once)"),
        jobs: int = typer.Option(1, help="tasks run in parallel"),
        executor: Executor = typer.Option("local", help="ray: evaluations on a Ray cluster"),
        address: Optional[str] = typer.Option(None, help="Ray cluster address (with --executor ray)"),
        fit: Fit = typer.Option("auto", help="auto: scale batch/spatial sizes to this machine; none: as is"),
        baselines: str = typer.Option("eager,compile", help="eager,compile | eager | none (torch.compile is "
                                                            "measured in a probe process with a time limit)"),
        compile_timeout: float = typer.Option(300.0, help="seconds for one task's torch.compile baseline"),
        device: Device = typer.Option("cpu", help="where the tasks run"),
        include_degenerate: bool = typer.Option(False, "--include-degenerate",
                                                help="count tasks flagged degenerate in fast_p"),
        run_dir: Optional[Path] = typer.Option(None, help="default runs/<timestamp>-bench-<suite>"),
        resume: bool = typer.Option(False, "--resume", help="continue the bench in --run-dir with its stored config"),
        override: bool = typer.Option(False, "--override", help="with --resume: let flags change the stored config"),
        as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
    ) -> None:
        """Run the optimizer over a suite of tasks; fast_p tables and plots in report.md/html."""
        if suite is None and not resume:
            raise UserInputError("usage: kopt bench SUITE (a KernelBench checkout or a folder of tasks), or "
                                 "kopt bench --resume --run-dir DIR")
        cfg = bench_config(ctx, config, suite, run_dir if resume else None, override)
        progress = _Progress(as_json)
        try:
            summary = run_bench(cfg, run_dir, resume, progress)
        except KeyboardInterrupt:
            progress.stop()
            fail("interrupted; finished tasks are kept: continue with kopt bench --resume --run-dir DIR", 130)
        finally:
            progress.stop()
        config_file.write(Path(summary["bench_dir"]), stored_sections(cfg))
        if as_json:
            typer.echo(json.dumps(summary, indent=2))
        else:
            _print_summary(summary)
        scored = summary["metrics"]["all"]
        raise typer.Exit(0 if scored["correct"] else 1)

    @runs_app.command("compare")
    def runs_compare(a: Path = typer.Argument(..., help="first run (bench or optimize run directory)"),
                     b: Path = typer.Argument(..., help="second run"),
                     out: Optional[Path] = typer.Option(None, help="comparison page with the plot "
                                                                   "(default B/compare-with-<A>.html)"),
                     as_json: bool = typer.Option(False, "--json")) -> None:
        """Side-by-side table of two runs (per task and fast_p), and a comparison plot."""
        res = compare(a, b, out or b / f"compare-with-{a.resolve().name}.html")
        if as_json:
            typer.echo(json.dumps({k: res[k] for k in ("a", "b", "metrics", "plot")} |
                                  {"tasks": res["rows"][1:]}, indent=2))
            return
        from rich.console import Console
        from rich.table import Table

        con = Console()
        for rows in (res["totals"], res["rows"]):
            t = Table(*rows[0])
            for row in rows[1:]:
                t.add_row(*row)
            con.print(t)
        con.print(f"A = {res['a']}\nB = {res['b']}\nplot: {res['plot']}", markup=False)

    @runs_app.command("report")
    def runs_report(run: Path = typer.Argument(..., help="bench or run directory")) -> None:
        """Re-render a run's or a bench's report.md and report.html from its stored results."""

        written = rerender(run)
        typer.echo(f"wrote {written}/report.md and {written}/report.html")


def bench_config(ctx, config: Path | None, suite: Path | None, resumed: Path | None, override: bool):
    """BenchConfig from defaults, --config's [bench]/[eval] and the flags given (a resumed bench:
    its stored config.json, changed only with --override)."""
    where = f"--config {config}" if config else "flags"
    schemas = {"bench": BenchConfig, "eval": EvalConfig}
    exclude = {"bench": {"suite", "eval"}, "eval": {"device", "hidden_paths"}}
    file_data = config_file.load(config) if config else {}
    config_file.check_keys(file_data, schemas, where, exclude)
    flags = config_file.given_flags(ctx, BENCH_FLAGS)
    sections = config_file.resolve(config_file.stored_config(resumed), file_data, flags, BENCH_FLAGS, override,
                                   resumed)
    config_file.check_keys(sections, schemas, where, exclude)
    bench = dict(sections.get("bench", {}))
    if isinstance(bench.get("baselines"), str):
        bench["baselines"] = parse_baselines(bench["baselines"])
    if bench.get("device", "cpu") not in ("cpu", "cuda"):
        raise UserInputError(f"{where}: [bench] device {bench['device']!r}: use cpu or cuda")
    config_file.build(EvalConfig, sections.get("eval", {}), where)
    return config_file.build(BenchConfig, {"suite": str(suite.resolve()) if suite else "",
                                           "eval": dict(sections.get("eval", {})), **bench}, where)


def stored_sections(cfg) -> dict:
    """A BenchConfig as config.json's sections (the suite is the bench's own record, not a setting)."""
    import dataclasses

    bench = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("suite", "eval")}
    return {"bench": bench, "eval": dict(cfg.eval)}


def rerender(run: Path) -> Path:
    """Rebuild the reports from what is stored: a bench's task results or a run's store."""
    if (run / BENCH_FILE).exists():
        write_bench_report(run)
        return run
    if not (run / STORE_FILE).exists():
        raise UserInputError(f"{run} is neither a bench nor a run directory (no {BENCH_FILE} or {STORE_FILE})")
    old = json.loads((run / "summary.json").read_text()) if (run / "summary.json").exists() else {}
    rec = result_from_store(run)
    store = Store.open_run_dir(run)
    try:
        runs = store.runs()
        if not runs:
            raise UserInputError(f"{run} holds no run yet")
        config = json.loads(runs[0].get("config") or "{}")
        best = old.get("best") or rec.get("best")
        write_reports(run, store, runs[0]["id"], best, old.get("stop_reason") or "re-rendered from the store",
                      old.get("model") or model_label(config.get("model")))
    finally:
        store.close()
    return run
