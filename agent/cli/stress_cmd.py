"""`kopt stress`: legal inputs on which a program is slow (architecture §7)."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from kopt.agent.stress.run import StressConfig, run_stress


def register(app: typer.Typer, runs_app: typer.Typer) -> None:
    """Add this module's commands to the `kopt` app (and `kopt runs`)."""

    @app.command("stress")
    def stress(
        program: Path = typer.Argument(..., help="C/C++ or Python program reading stdin"),
        validator: Path = typer.Option(..., help="input validator: exits 0 exactly when stdin is a legal input"),
        generator: Optional[Path] = typer.Option(None, help="generator program run as `G SEED SIZE`"),
        seeds: Optional[Path] = typer.Option(None, help="folder of legal inputs to start from (e.g. the tests)"),
        budget: int = typer.Option(40, help="mutated inputs to cost (each is one reference run)"),
        max_bytes: int = typer.Option(1 << 20, "--max-bytes", help="largest input to consider"),
        max_cost: float = typer.Option(5e8, "--max-cost", help="instructions one run may take before the "
                                                               "generators stop growing their inputs"),
        out: Optional[Path] = typer.Option(None, help="folder for the inputs found, stress_NN.in "
                                                      "(default: stress-PROGRAM)"),
        model: str = typer.Option("rules", help="rules | openai/<name> | litellm/<p>/<name> | hf:<path>"),
        base_url: Optional[str] = typer.Option(None, help="OpenAI-compatible server URL"),
        std: Optional[str] = typer.Option(None, help="C/C++ standard, e.g. c++17"),
        as_json: bool = typer.Option(False, "--json", help="print the result as JSON"),
    ) -> None:
        """Find legal inputs that make PROGRAM slow: generators, then cost-guided mutation."""
        def progress(msg: str) -> None:
            if not as_json:
                print(msg, file=sys.stderr)

        cfg = StressConfig(validator=validator, generator=generator, seeds=seeds, budget=budget, max_bytes=max_bytes,
                           max_cost=max_cost, out=out or Path(f"stress-{program.stem}"), model=model,
                           base_url=base_url, std=std)
        result = run_stress(program, cfg, progress)
        if as_json:
            typer.echo(json.dumps(result, indent=2))
        else:
            unit = "instructions" if result["metric"] == "instructions" else "ms"
            top = result["max_instructions"] if unit == "instructions" else result["max_ms"]
            base = result["baseline_instructions"] if unit == "instructions" else result["baseline_ms"]
            typer.echo(f"costliest legal input: {top:,} {unit} vs {base:,} for random legal inputs of the same "
                       f"size ({result['slowdown_vs_random']:.1f}x), {result['tried']} inputs tried")
            if result["layout"]:
                typer.echo(f"inferred layout: {result['layout']}")
            for path, origin in zip(result["inputs"], result["origins"]):
                typer.echo(f"  {path}  ({origin})")
        raise typer.Exit(0 if result["slowdown_vs_random"] > 1.0 else 1)
