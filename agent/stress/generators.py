"""Generator programs: `GEN SEED SIZE` prints one input on stdout.

A user's generator (`--generator G`) or ones an LLM writes after reading the program: the
model is asked for generators aimed at the slow paths it sees, each is run in the sandbox
at growing sizes, its legal outputs are costed, and the measured costs (against random
inputs) go back to the model for the next round.
"""
from __future__ import annotations

import re
from pathlib import Path

from kopt.agent.errors import UserInputError
from kopt.agent.stress.cost_search import CostMeter
from kopt.agent.stress.validator import Validator
from kopt.sandboxes.program_runner import FlagError, ProgramRunner, language_of, source_flags_for

GENERATOR_TIMEOUT_S = 20.0
FENCE = re.compile(r"```(?:python|py)\n(.*?)```", re.S)


def load_generator(path: Path) -> ProgramRunner:
    """A user's generator, built (C/C++/Python source) or used as an executable, in its sandbox."""
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"generator not found: {path}")
    runner = ProgramRunner("generator")
    language = language_of(path)
    try:
        if language is None:
            runner.use_executable(path)
        else:
            source = path.read_text()
            try:
                err = runner.build(source, language, source_flags_for(path, language, source))
            except FlagError as e:
                raise UserInputError(f"generator {path.name}: {e}") from None
            if err:
                raise UserInputError(f"generator {path.name} does not compile: {err.splitlines()[0][:200]}")
    except BaseException:
        runner.close()
        raise
    return runner


def generated_inputs(gen: ProgramRunner, validator: Validator, max_bytes: int, name: str,
                     seeds: int = 3) -> tuple[list[tuple[str, bytes]], list[str]]:
    """Legal outputs of GEN at doubling sizes (up to the validator's or MAX_BYTES' limit), and
    notes on what went wrong (for the model's feedback)."""
    out, notes = [], []
    for seed in range(1, seeds + 1):
        size, last_legal = 8, None
        while size < 1 << 30:
            r = gen.run(b"", GENERATOR_TIMEOUT_S, args=[str(seed), str(size)])
            if not r.ok:
                notes.append(f"seed {seed} size {size}: the generator failed ({r.failure()})")
                break
            if len(r.stdout) > max_bytes:
                break
            if not validator.accepts(r.stdout):
                if last_legal is None:
                    notes.append(f"seed {seed} size {size}: the validator rejected the output")
                break
            last_legal = r.stdout
            size *= 2
        if last_legal is not None:
            out.append((f"{name} seed {seed}", last_legal))
    return out, notes


def generator_prompt(program: str, validator: str, feedback: str) -> list[dict]:
    system = ("You write test generators that make a program as slow as possible on LEGAL inputs. "
              "Read the program, find its slow paths (worst cases of its algorithms, hash collisions, "
              "degenerate pivots, many equal keys, deep recursion), and write one Python 3 generator "
              "(standard library only) run as `python gen.py SEED SIZE` that prints one input on stdout: "
              "deterministic for a SEED, with about SIZE items, always legal for the validator.")
    user = (f"Program:\n```\n{program}\n```\n\nValidator (exit 0 = legal):\n```\n{validator}\n```\n\n"
            + (f"Measured so far:\n{feedback}\n\n" if feedback else "")
            + "Answer with one ```python block holding the whole generator.")
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def llm_generators(chat, program: str, validator_source: str, validator: Validator, meter: CostMeter,
                   max_bytes: int, rounds: int = 2, progress=None) -> list[tuple[str, bytes]]:
    """Ask the model for generators, ROUNDS times, each round told the costs the last one reached."""
    progress = progress or (lambda msg: None)
    found: list[tuple[str, bytes]] = []
    feedback = ""
    for k in range(1, rounds + 1):
        answer = chat.complete(generator_prompt(program, validator_source, feedback)).text
        blocks = FENCE.findall(answer)
        if not blocks:
            feedback += f"\nround {k}: no ```python block in the answer."
            continue
        with ProgramRunner("generator") as gen:
            err = gen.build(max(blocks, key=len), "python", [])
            if err:
                feedback += f"\nround {k}: the generator does not parse: {err[:200]}"
                continue
            inputs, notes = generated_inputs(gen, validator, max_bytes, f"llm generator {k}", seeds=2)
        costs = [(name, meter.cost(data)) for name, data in inputs]
        lines = [f"{name}: {len(data)} bytes, cost {c:,.0f} {meter.metric}" for (name, data), (_, c) in
                 zip(inputs, costs) if c is not None]
        feedback += f"\nround {k}: " + ("; ".join(lines + notes) or "no legal input")
        progress(f"LLM generator round {k}: {len(inputs)} legal input(s)")
        found.extend(inputs)
    return found
