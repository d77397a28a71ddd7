"""The one way a command fails: a line on stderr naming the problem (and the fix), then the
exit code of architecture §1 (2 bad input, 3 missing from the environment, 1 work failed) --
never a traceback for a user error."""
from __future__ import annotations

from typing import NoReturn

import typer

from kopt.agent.errors import KoptError


def fail(message: str, code: int) -> NoReturn:
    typer.echo(f"kopt: {message}", err=True)
    raise typer.Exit(code)


def fail_on(error: KoptError) -> NoReturn:
    """A KoptError as its one line and its exit code."""
    fail(str(error), error.exit_code)
