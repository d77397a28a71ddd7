"""`kopt runs list|show|export`: what run directories hold, as tables, JSON or training data."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from kopt.agent.cli.choices import ExportFormat, value
from kopt.agent.errors import UserInputError
from kopt.agent.runs.store import STORE_FILE, Store, find_runs
from kopt.rl_finetune.export import ROWS, write_jsonl


def register(app: typer.Typer, runs_app: typer.Typer) -> None:
    """Add this module's commands to `kopt runs`."""
    runs_app.command("list")(runs_list)
    runs_app.command("show")(runs_show)
    runs_app.command("export")(runs_export)


def runs_list(root: Path = typer.Argument(Path("runs"), help="folder holding run directories"),
              as_json: bool = typer.Option(False, "--json")) -> None:
    """List run directories with their status and best verified speedup."""

    rows = []
    for d in find_runs(root) if root.exists() else []:
        store = Store.open_run_dir(d)
        for run in store.runs():
            evals = store.evaluations(run["id"])
            best = max((e.speedup for e in evals if e.result.get("correct") and e.speedup), default=None)
            rows.append({"dir": str(d), "id": run["id"], "command": run["command"], "target": run["target"],
                         "status": run["status"], "evaluations": len(evals), "best_speedup": best})
        store.close()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        typer.echo(f"no runs under {root}")
        return
    from rich.console import Console
    from rich.table import Table

    t = Table("run dir", "command", "target", "status", "evals", "best")
    for r in rows:
        best = f"{r['best_speedup']:.3f}x" if r["best_speedup"] else "-"
        t.add_row(r["dir"], r["command"], Path(r["target"]).name, r["status"], str(r["evaluations"]), best)
    Console().print(t)


def _open_run(run: Path) -> Store:
    if not (run / STORE_FILE).exists():
        raise UserInputError(f"{run} is not a run directory (no {STORE_FILE}); see `kopt runs list`")
    return Store.open_run_dir(run)


def runs_show(run: Path = typer.Argument(..., help="run directory"),
              as_json: bool = typer.Option(False, "--json")) -> None:
    """Show a run: its candidates and every evaluation."""

    store = _open_run(run)
    info = {"runs": store.runs(), "candidates": [], "evaluations": []}
    for c in store.candidates():
        info["candidates"].append({"id": c.id, "parents": c.parent_ids, "plan_step": c.plan_step,
                                   "skills": c.skills, "proposer": c.proposer})
    for e in store.evaluations():
        info["evaluations"].append({"candidate": e.candidate_id, **{k: e.result.get(k) for k in
                                    ("verdict", "speedup", "speedup_ci", "reason")}})
    store.close()
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    con = Console()
    for r in info["runs"]:  # stored text comes from candidates and models: never read as markup
        con.print(f"[bold]{escape(str(r['id']))}[/] {escape(str(r['command']))} {escape(str(r['target']))} "
                  f"({escape(str(r['status']))})")
    t = Table("candidate", "verdict", "speedup", "CI", "reason")
    for e in info["evaluations"]:
        ci = e["speedup_ci"]
        t.add_row(Text(str(e["candidate"])), Text(str(e["verdict"] or "")),
                  f"{e['speedup']:.3f}" if e["speedup"] else "-",
                  f"{ci[0]:.2f}-{ci[1]:.2f}" if ci else "-", Text((e["reason"] or "")[:80]))
    con.print(t)


def runs_export(run: Path = typer.Argument(..., help="run directory"),
                fmt: ExportFormat = typer.Option("trl", "--format", help="trl: conversational prompt/completion/"
                                                 "reward; dpo: prompt/chosen/rejected pairs; sft: verified-faster "
                                                 "solutions as messages"),
                out: Optional[Path] = typer.Option(None, "--out", help="file to write (default: stdout)")) -> None:
    """Export a run's evaluated proposals as a training dataset (one JSON object a line)."""
    store = _open_run(run)
    try:
        rows = ROWS[value(fmt)](store)
    finally:
        store.close()
    if out is None:
        write_jsonl(rows, sys.stdout)
        return
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", encoding="utf-8") as fh:
            n = write_jsonl(rows, fh)
    except OSError as e:
        raise UserInputError(f"cannot write {out}: {e.strerror or e}") from None
    typer.echo(f"wrote {n} example(s) to {out}", err=True)
