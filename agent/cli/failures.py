"""The one way a command fails: a line on stderr naming the problem (and the fix), then the
exit code of architecture §1 (2 bad input, 3 missing from the environment, 1 work failed) --
never a traceback for a user error.

Commands just raise `KoptError`; `KoptGroup`, the class of the root `kopt` app, turns it into
that line and exit code wherever the app is invoked (the `kopt` script, `python -m`, a test's
CliRunner)."""
from __future__ import annotations

from typing import NoReturn

import typer
from typer.core import TyperGroup

from kopt.agent.errors import KoptError


def fail(message: str, code: int) -> NoReturn:
    typer.echo(f"kopt: {message}", err=True)
    raise typer.Exit(code)


def fail_on(error: KoptError) -> NoReturn:
    """A KoptError as its one line and its exit code."""
    fail(str(error), error.exit_code)


class KoptGroup(TyperGroup):
    """The root command group: every sub-command runs inside `invoke`, so a KoptError raised
    anywhere below is handled here, once."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KoptError as e:
            fail_on(e)
