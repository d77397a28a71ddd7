"""One error-to-exit-code handler: a command raises KoptError and the root group (KoptGroup)
prints its one line with the exit code of architecture §1; a bug is never hidden as one."""
from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from kopt.agent.cli.failures import KoptGroup
from kopt.agent.errors import EnvironmentMissing, UserInputError


def make_app(error: Exception) -> typer.Typer:
    app = typer.Typer(cls=KoptGroup)
    sub = typer.Typer()
    app.add_typer(sub, name="sub")

    @app.command("top")
    def top() -> None:
        raise error

    @sub.command("nested")
    def nested() -> None:
        raise error

    return app


@pytest.mark.parametrize("where", [["top"], ["sub", "nested"]])
@pytest.mark.parametrize("error,code", [(UserInputError("give --x"), 2), (EnvironmentMissing("no gcc on PATH"), 3)])
def test_a_kopt_error_anywhere_is_its_line_and_exit_code(where, error, code):
    r = CliRunner().invoke(make_app(error), where)
    assert r.exit_code == code and r.output == f"kopt: {error}\n", r.output


def test_a_bug_is_not_turned_into_a_user_error():
    r = CliRunner().invoke(make_app(ZeroDivisionError("bug")), ["top"])
    assert isinstance(r.exception, ZeroDivisionError) and r.exit_code == 1
