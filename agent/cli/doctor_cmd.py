"""`kopt doctor`: what this machine can do (sandbox isolation, compilers, GPU) and which extras are installed."""
from __future__ import annotations

import json

import typer

from kopt.agent.cli.extras import extras_lines, extras_status
from kopt.sandboxes.doctor import report


def register(app: typer.Typer, runs_app: typer.Typer) -> None:
    """Add this module's commands to the `kopt` app (and `kopt runs`)."""
    app.command("doctor")(doctor)


def doctor(as_json: bool = typer.Option(False, "--json")) -> None:
    """Report what this machine can do: sandbox isolation, compilers, GPU, valgrind, installed extras."""
    info = report()
    if as_json:
        typer.echo(json.dumps({**info, "extras": extras_status()}, indent=2))
        return
    for k, v in info.items():
        typer.echo(f"{k:<22} {v}")
    typer.echo("\noptional extras (pip install 'kopt[NAME]'):")
    for line in extras_lines():
        typer.echo(f"  {line}")
