"""`kopt runs cache stats|clear`: the evaluation cache shared by optimize, bench and train."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from kopt.agent.errors import UserInputError
from kopt.sandboxes.eval_cache import EvalCache, default_path

cache_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                        help="The evaluation cache (every measurement kopt made, reused while it still holds).")
PATH_HELP = "cache file (default $KOPT_EVAL_CACHE, else $KOPT_CACHE_DIR/evals.sqlite, i.e. ~/.cache/kopt)"


def register(app: typer.Typer, runs_app: typer.Typer) -> None:
    """Add `kopt runs cache` to `kopt runs`."""
    runs_app.add_typer(cache_app, name="cache")


def _open(path: Optional[Path]):
    target = path or default_path()
    if path is not None and not target.exists():
        raise UserInputError(f"no cache at {target}; give an existing file or leave --path out")
    return EvalCache(target)


@cache_app.command("stats")
def stats(path: Optional[Path] = typer.Option(None, "--path", help=PATH_HELP),
          as_json: bool = typer.Option(False, "--json")) -> None:
    """Candidates, measurements and verdicts in the cache; entries made by another evaluator version."""
    cache = _open(path)
    st = cache.stats()
    cache.close()
    if as_json:
        typer.echo(json.dumps(st, indent=2))
        return
    verdicts = ", ".join(f"{k} {v}" for k, v in sorted(st["verdicts"].items(), key=lambda kv: str(kv[0]))) or "-"
    typer.echo(f"cache         {st['path']} ({st['bytes'] / 1e6:.1f} MB)\n"
               f"candidates    {st['candidates']}\nmeasurements  {st['measurements']}\nverdicts      {verdicts}\n"
               f"stale         {st['stale_evaluator']} measurement(s) by another evaluator version (never served)\n"
               f"span          {st['oldest'] or '-'} .. {st['newest'] or '-'} UTC")


@cache_app.command("clear")
def clear(path: Optional[Path] = typer.Option(None, "--path", help=PATH_HELP)) -> None:
    """Forget every stored measurement (the next evaluations measure again)."""
    cache = _open(path)
    n = cache.clear()
    cache.close()
    typer.echo(f"cleared {n} measurement(s) from {cache.path}")
