"""The `kopt` command line: assembles the typer app from one module per command; each command
just raises KoptError, which `KoptGroup` (failures.py) turns into one line and an exit code."""
from __future__ import annotations

import sys

import typer

from kopt.agent.cli import (
    bench_cmd,
    cache_cmd,
    doctor_cmd,
    eval_cmd,
    optimize_cmd,
    runs_cmd,
    skills_cmd,
    stress_cmd,
    train_cmd,
)
from kopt.agent.cli.failures import KoptGroup

# rich_markup_mode=None: help texts are plain text ("NAME.in [/ NAME.out]" is not markup)
app = typer.Typer(cls=KoptGroup, no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
                  help="kopt: find faster, verified versions of kernels and programs.")
runs_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="Inspect run directories.")
app.add_typer(runs_app, name="runs")

# the order `kopt --help` and `kopt runs --help` list the commands in
COMMANDS = (eval_cmd, optimize_cmd, runs_cmd, doctor_cmd, skills_cmd, stress_cmd, bench_cmd, train_cmd, cache_cmd)


def _version(show: bool) -> None:
    if show:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"kopt {version('kopt')}")
        except PackageNotFoundError:
            typer.echo("kopt (not installed as a package)")
        raise typer.Exit(0)


@app.callback()
def _root(show_version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                            help="print kopt's version and exit")) -> None:
    """kopt: find faster, verified versions of kernels and programs."""


for _module in COMMANDS:
    _module.register(app, runs_app)


def _click_exceptions():
    """click's exceptions module: typer >= 0.26 ships its own copy of click."""
    try:
        from typer._click import exceptions
    except ImportError:
        from click import exceptions
    return exceptions


def main() -> None:
    """Run the app; a usage error (unknown flag, a value outside a flag's choices) is one line."""
    ex = _click_exceptions()
    try:
        rv = app(standalone_mode=False)
    except ex.ClickException as e:
        if type(e).__name__ == "NoArgsIsHelpError":  # bare `kopt` / `kopt runs`: the help, as asked
            e.show()
            sys.exit(0)
        where = e.ctx.command_path if getattr(e, "ctx", None) else "kopt"
        typer.echo(f"kopt: {e.format_message().replace('Value error, ', '')} (see {where} --help)", err=True)
        sys.exit(e.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        typer.echo("kopt: interrupted", err=True)
        sys.exit(130)
    sys.exit(rv if isinstance(rv, int) and not isinstance(rv, bool) else 0)


if __name__ == "__main__":
    main()
