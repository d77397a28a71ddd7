"""`kopt train` commands."""
from __future__ import annotations

import typer


def register(app: typer.Typer, runs_app: typer.Typer) -> None:
    """Add this module's commands to the `kopt` app (and `kopt runs`)."""
