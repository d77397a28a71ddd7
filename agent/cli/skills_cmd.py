"""`kopt skills`: list and show skill cards, mine new ones from runs or slow/fast pairs."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from kopt.agent.cli.failures import fail
from kopt.agent.errors import UserInputError
from kopt.agent.proposers.factory import make_proposer
from kopt.skills import card_writers, mining
from kopt.skills.library import Library, dump_yaml
from kopt.skills.schema import DOMAINS, TYPES

skills_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                         help="The skill library: curated and mined optimisation cards.")


def _library(skills_dir: Optional[Path]):
    return Library.load(user_dir=skills_dir, similarity="bm25")


def _row(card) -> dict:
    measured = card.measured()
    return {"id": card.id, "type": card.type, "domain": card.domain, "title": card.title, "tags": card.tags,
            "origin": card.origin, "evidence": len(card.evidence),
            "best_speedup": max(measured) if measured else None}


@skills_app.command("list")
def list_cmd(domain: Optional[str] = typer.Option(None, help="cuda | triton | cpp | python | any"),
             type_: Optional[str] = typer.Option(None, "--type", help="operator | meta"),
             skills_dir: Optional[Path] = typer.Option(None, "--skills", help="user library (default ~/.kopt/skills)"),
             as_json: bool = typer.Option(False, "--json", help="one JSON object per card, in a list")) -> None:
    """List the skill cards (curated and mined)."""
    if domain is not None and domain not in DOMAINS:
        raise UserInputError(f"unknown --domain {domain!r}; use one of: {', '.join(DOMAINS)}")
    if type_ is not None and type_ not in TYPES:
        raise UserInputError(f"unknown --type {type_!r}; use one of: {', '.join(TYPES)}")
    cards = _library(skills_dir).select(domain=domain, type=type_)
    rows = [_row(c) for c in sorted(cards, key=lambda c: (c.type, c.domain, c.id))]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    cells = [(r["id"] + (" *" if r["origin"] == "mined" else ""), r["type"], r["domain"], str(r["evidence"]),
              f"{r['best_speedup']:.2f}x" if r["best_speedup"] else "-", r["title"]) for r in rows]
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table

        t = Table("id", "type", "domain", "evidence", "best", "title")
        t.columns[0].no_wrap = True
        for c in cells:
            t.add_row(*(escape(cell) for cell in c))  # card text may be mined: never read as markup
        Console().print(t)
    else:
        width = max((len(c[0]) for c in cells), default=2)
        for c in cells:
            typer.echo(f"{c[0]:<{width}}  {c[1]:<8}  {c[2]:<6}  {c[3]:>3}  {c[4]:>7}  {c[5]}")
    typer.echo(f"{len(rows)} card(s); * = mined")


@skills_app.command("show")
def show_cmd(card_id: str = typer.Argument(..., help="card id (see `kopt skills list`)"),
             skills_dir: Optional[Path] = typer.Option(None, "--skills", help="user library (default ~/.kopt/skills)"),
             as_json: bool = typer.Option(False, "--json")) -> None:
    """Show one card: triggers, the before/after sketch, risks and evidence."""
    card = _library(skills_dir).get(card_id)
    data = card.model_dump(exclude_defaults=True)
    typer.echo(json.dumps(card.model_dump(), indent=2) if as_json else dump_yaml(data).rstrip())


@skills_app.command("mine")
def mine_cmd(from_run: Optional[Path] = typer.Option(None, "--from-run", help="run directory to learn from"),
             pairs: Optional[Path] = typer.Option(None, "--pairs", help="folder of NAME.slow.EXT / NAME.fast.EXT "
                                                                        "(+ optional NAME.in)"),
             skills_dir: Optional[Path] = typer.Option(None, "--skills", help="where mined cards go "
                                                                              "(default ~/.kopt/skills)"),
             model: str = typer.Option("rules", help="rules (diff classifier) | openai/<name> | litellm/... | hf:..."),
             base_url: Optional[str] = typer.Option(None, help="OpenAI-compatible server URL"),
             as_json: bool = typer.Option(False, "--json")) -> None:
    """Turn verified improvements (>= 1.1x) into new cards or evidence on existing ones."""
    if (from_run is None) == (pairs is None):
        raise UserInputError("give exactly one of --from-run RUN_DIR or --pairs DIR")
    library = _library(skills_dir)
    writer = card_writers.RulesWriter() if model == "rules" else card_writers.LLMWriter(_chat(model, base_url))
    if from_run is not None:
        found, summary = mining.pairs_from_run(from_run)
        if not found:
            raise mining.NothingMined(f"no verified parent->child improvement of at least {mining.MIN_GAIN}x in "
                                      f"{from_run} ({summary}); nothing to mine")
    else:
        found = mining.pairs_from_dir(pairs)
    outcomes = mining.mine(found, library, writer)
    learned = [o for o in outcomes if o.action != "skipped"]
    if as_json:
        typer.echo(json.dumps({"skills_dir": str(library.user_dir), "writer": writer.name,
                               "outcomes": [o.__dict__ for o in outcomes]}, indent=2))
    else:
        for o in outcomes:
            typer.echo(o.line())
        typer.echo(f"{len(learned)} of {len(outcomes)} pair(s) learned from -> {library.user_dir}")
    if not learned:
        fail("nothing mined: no pair was a verified improvement of at least "
              f"{mining.MIN_GAIN}x with a recognisable change", 1)


def _chat(model: str, base_url: Optional[str]):
    proposer = make_proposer(model, base_url)
    chat = getattr(proposer, "chat", None)
    if chat is None:
        raise UserInputError(f"--model {model} cannot write cards; use rules or openai/..., litellm/..., hf:...")
    return chat


def register(app: typer.Typer, runs_app: typer.Typer) -> None:
    """Add this module's commands to the `kopt` app (and `kopt runs`)."""
    app.add_typer(skills_app, name="skills")
