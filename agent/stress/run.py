"""`kopt stress` end to end: load the program, the validator, seeds and generators; search;
write the inputs found; return the `--json` dict."""
from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from kopt.agent.errors import EnvironmentMissing, UserInputError
from kopt.agent.proposers.factory import make_proposer
from kopt.agent.stress.cost_search import RUN_TIMEOUT_S, CostMeter, StressResult, StressSearch
from kopt.agent.stress.generators import generated_inputs, llm_generators, load_generator
from kopt.agent.stress.infer import infer
from kopt.agent.stress.layout_probe import probe_inputs
from kopt.agent.stress.validator import Validator
from kopt.sandboxes.program_runner import build_reference, compiler_version, language_of, valgrind_path

DEFAULT_MAX_BYTES = 1 << 20


def read_seeds(folder: Path) -> list[tuple[str, bytes]]:
    if not folder.is_dir():
        raise UserInputError(f"seeds folder not found: {folder}")
    files = sorted(f for f in folder.iterdir() if f.is_file() and f.suffix != ".out")
    if not files:
        raise UserInputError(f"seeds folder {folder} holds no input files")
    return [(f"seed {f.name}", f.read_bytes()) for f in files]


class StressConfig(BaseModel):
    """Everything one `kopt stress` run is set up with, built once by the CLI (`kopt stress --help`)."""
    model_config = ConfigDict(extra="forbid")
    validator: Path = Field(description="input validator: exits 0 exactly when stdin is a legal input")
    generator: Path | None = Field(None, description="generator program run as `G SEED SIZE`")
    seeds: Path | None = Field(None, description="folder of legal inputs to start from")
    budget: int = Field(40, description="mutated inputs to cost (each is one reference run)")
    max_bytes: int = Field(DEFAULT_MAX_BYTES, description="largest input to consider")
    max_cost: float = Field(5e8, description="instructions one run may take before generators stop growing")
    out: Path | None = Field(None, description="folder for the inputs found (None: keep them in memory)")
    model: str | None = Field(None, description="a model that writes generators (None or 'rules': none)")
    base_url: str | None = None
    std: str | None = Field(None, description="C/C++ standard, e.g. c++17")
    use_generators: bool = True
    use_mutation: bool = True
    keep: int = Field(5, description="how many of the costliest inputs to keep")
    seed: int = 0


def run_stress(program: Path, cfg: StressConfig, progress=None) -> dict:
    """The search of architecture §7 for PROGRAM; `progress` gets one line per step."""
    progress = progress or (lambda msg: None)
    program = Path(program)
    language = language_of(program)
    if language is None or not program.is_file():
        raise UserInputError(f"{program}: give a C/C++ or Python program source (.c, .cpp, .py)")
    if language != "python" and compiler_version(language) == "missing":
        raise EnvironmentMissing("no C/C++ compiler on PATH (gcc/g++)")
    if cfg.budget < 0 or cfg.max_bytes < 1:
        raise UserInputError("--budget must be >= 0 and --max-bytes >= 1")
    source = program.read_text()
    runner, err = build_reference(program, language, source, cfg.std)
    with runner, Validator.load(cfg.validator, cfg.std) as v:
        if err:
            first = next((line for line in err.splitlines() if "error" in line), err.splitlines()[0])
            raise UserInputError(f"{program.name} does not compile: {first.strip()[:200]}")
        meter = CostMeter(runner)
        start: list[tuple[str, bytes]] = []
        if cfg.seeds is not None:
            start += read_seeds(Path(cfg.seeds))
            v.check_all(start)
        if cfg.use_generators and cfg.generator is not None:
            with load_generator(Path(cfg.generator)) as gen:
                made, notes = generated_inputs(gen, v, cfg.max_bytes, f"generator {Path(cfg.generator).name}")
            if not made:
                raise UserInputError(f"generator {Path(cfg.generator).name} produced no legal input "
                                     f"({notes[0] if notes else 'all outputs rejected'})")
            start += made
        if cfg.use_generators and cfg.model not in (None, "rules"):
            chat = make_proposer(cfg.model, cfg.base_url).chat
            start += llm_generators(chat, source, Path(cfg.validator).read_text(errors="replace"), v, meter,
                                    cfg.max_bytes, progress=progress)
        grammar = infer(v, cfg.max_bytes, [data for _, data in start]) if cfg.use_mutation else None
        if grammar is not None:
            progress(f"inferred layout: {grammar.summary()}")
            if not start:
                start = [(f"inferred layout: {grammar.family.name}", grammar.family.text(grammar.example))]
        if not start and cfg.generator is None and cfg.seeds is None:
            start = probe_inputs(v)  # no layout inferred: the fixed layouts the validator accepts
            if start:
                progress(f"no seeds given: the validator accepts {len(start)} common layout(s): "
                         + ", ".join(name.split(": ", 1)[1] for name, _ in start))
        if not start:
            raise UserInputError("no legal starting input: the validator accepts none of kopt's common layouts; "
                                 "give --seeds DIR (legal inputs), --generator G, or --model for LLM-written "
                                 "generators")
        search = StressSearch(v, meter, budget=cfg.budget, max_bytes=cfg.max_bytes, seed=cfg.seed,
                              mutate_inputs=cfg.use_mutation, push=cfg.use_mutation, progress=progress, grammar=grammar,
                              max_cost=cfg.max_cost)
        for name, data in start:
            r = runner.run(data, RUN_TIMEOUT_S)
            if not r.ok:
                raise UserInputError(f"{program.name} {'times out' if r.timed_out else 'fails'} on {name} "
                                     f"({r.failure()}); fix the program or the input")
        result = search.run(start)
    if not result.inputs:
        raise UserInputError(f"validator {Path(cfg.validator).name} accepts none of the starting inputs")
    return {**summarize(result, cfg.out, cfg.keep, metric_note=valgrind_path() is not None),
            "layout": grammar.summary() if grammar is not None else None}


def summarize(result: StressResult, out: Path | None, keep: int, metric_note: bool) -> dict:
    kept = result.inputs[:keep]
    paths = []
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        for k, f in enumerate(kept, 1):
            p = out / f"stress_{k:02d}.in"
            p.write_bytes(f.data)
            paths.append(str(p))
    counting = result.metric == "instructions"
    return {"inputs": paths or [f.key for f in kept], "slowdown_vs_random": round(result.slowdown, 3),
            "max_instructions": int(result.best.cost) if counting else None,
            "baseline_instructions": int(result.baseline) if counting else None,
            "max_ms": None if counting else round(result.best.cost, 3),
            "baseline_ms": None if counting else round(result.baseline, 3),
            "metric": result.metric, "valid": True, "tried": result.tried,
            "origins": [f.origin for f in kept], "costs": [f.cost for f in kept], "notes": result.log[:5]}
