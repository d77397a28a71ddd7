"""Programs as search targets: one C/C++ or Python source that reads stdin and writes stdout.

The reference program is built and run once on every input (tests plus stress inputs) when
the target loads; its outputs (or the tests' `.out` files) are the truth and its instruction
counts are cached. A candidate is then built and run in its own sandbox, with the reference
source, the tests and the run directory hidden from it (`program_eval.py`); the inputs and
how outputs are compared are `program_inputs.py`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from kopt.agent.errors import EnvironmentMissing, UserInputError
from kopt.agent.proposers.prompting.answers import EditError, program_from_answer
from kopt.agent.stress.cost_search import CostMeter, StressSearch
from kopt.agent.stress.validator import Validator
from kopt.agent.targets.option_flags import as_flags
from kopt.agent.targets.program.program_eval import evaluate_program
from kopt.agent.targets.program.program_inputs import INPUT_TIMEOUT_S, Checker, ProgramInput, read_inputs
from kopt.sandboxes.program_runner import (
    build_reference,
    compiler_version,
    language_of,
    source_flags_for,
    valgrind_path,
)

AUTO_STRESS_BUDGET = 8        # with --validator and no --stress: a short search from the tests
AUTO_STRESS_SECONDS = 60.0
AUTO_STRESS_BYTES = 256 << 10
AUTO_STRESS_KEEP = 2

PROGRAM_INSTRUCTIONS = (
    "You optimize a program that reads its input on stdin and writes its answer on stdout. Write a "
    "faster program that prints the same output as the reference on every legal input (the checker "
    "compares outputs on hidden tests and adversarial stress inputs, so a shortcut that only works on "
    "easy inputs fails). Better algorithms and data structures, faster I/O and fewer allocations all "
    "count; cost is measured by executed instructions and wall time. For C/C++ you may set compiler "
    "flags with a first line `// kopt-flags: -O3 -march=native` (only -O*, -march/-mtune=native, "
    "-funroll-loops, -fno-*, -std=..., -DNAME are allowed). Answer with one fenced code block holding "
    "the whole file, or with SEARCH/REPLACE blocks against the current code.")


def code_from_program_answer(answer: str, parent_code: str, language: str) -> tuple[str, str]:
    """(new code, edit kind) from a model's answer: SEARCH/REPLACE blocks, a diff or a whole file."""

    code, kind = program_from_answer(answer, parent_code, language)
    if language == "python":
        try:
            compile(code, "<candidate>", "exec")
        except SyntaxError as e:
            raise EditError(f"the resulting program has a syntax error at line {e.lineno}: {e.msg}") from None
    elif "main" not in code:
        raise EditError("the resulting program has no main function")
    return code, kind


@dataclass
class ProgramTarget:
    """A stdin/stdout program with its inputs; see the module docstring."""

    path: Path
    source: str
    language: str
    inputs: list[ProgramInput]
    checker: Checker = field(default_factory=Checker)
    std: str | None = None
    private_paths: tuple[str, ...] = ()   # tests, stress inputs, validator: hidden from candidates
    rounds: int = 7
    max_timing_s: float = 20.0
    kind: str = "program"
    instructions: str = PROGRAM_INSTRUCTIONS
    # (class attributes, not fields) evaluated here, one at a time, against the inputs it
    # loaded; its `checks.detail` describes hidden tests, for the user only
    parallel_eval = cacheable = plannable = checks_in_prompt = profiled = False

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def suffix(self) -> str:
        return self.path.suffix

    @property
    def counting(self) -> bool:
        return valgrind_path() is not None

    @classmethod
    def from_options(cls, path: str | Path, tests: Path | None = None, validator: Path | None = None,
                     checker: str | None = None, std: str | None = None, stress: Path | None = None,
                     **unknown) -> ProgramTarget:
        if unknown:
            raise UserInputError(f"{as_flags(unknown)} does not apply to a "
                                 f"program target; it is for repository targets")
        p = Path(path).resolve()
        language = language_of(p)
        if language is None:
            raise UserInputError(f"{p.name}: not a C/C++ or Python source (.c, .cpp, .cc, .cxx, .py)")
        try:
            source = p.read_text()
        except (OSError, UnicodeDecodeError) as e:
            raise UserInputError(f"cannot read program {p}: {e}") from None
        if tests is None and stress is None:
            raise UserInputError(f"a program target needs inputs: --tests DIR (NAME.in files, NAME.out optional) "
                                 f"or --stress DIR (e.g. from `kopt stress {p.name} --out DIR`)")
        inputs = [*(read_inputs(Path(tests), "tests") if tests else []),
                  *(read_inputs(Path(stress), "stress") if stress else [])]
        private = tuple(str(Path(x).resolve()) for x in (tests, stress, validator) if x)
        target = cls(p, source, language, inputs, Checker.parse(checker), std, private)
        if validator is not None:
            with Validator.load(Path(validator), std) as v:
                v.check_all([(i.name, i.data) for i in inputs])
                if stress is None:
                    target.inputs += target.search_stress_inputs(v)
        target.prepare_reference()
        return target

    # -- the reference, once -------------------------------------------------------------
    def search_stress_inputs(self, validator) -> list[ProgramInput]:
        """A short, bounded stress search from the tests (when a validator says what is legal and
        no --stress folder was given): its costliest inputs join the checks, so a rewrite that
        is only fast or correct on the easy tests is caught."""

        runner, err = self._build_reference()
        with runner:
            if err:
                return []  # prepare_reference reports it in one line
            seeds = [(i.name, i.data) for i in self.inputs]
            if any(not runner.run(data, INPUT_TIMEOUT_S).ok for _, data in seeds):
                return []  # likewise
            largest = max(len(data) for _, data in seeds)
            search = StressSearch(validator, CostMeter(runner), budget=AUTO_STRESS_BUDGET,
                                  max_bytes=max(largest, AUTO_STRESS_BYTES), max_time_s=AUTO_STRESS_SECONDS)
            result = search.run(seeds, compare=False)
        known = {i.data for i in self.inputs}
        fresh = [f for f in result.inputs if f.data not in known][:AUTO_STRESS_KEEP]
        return [ProgramInput(f"stress-search/{k}.in ({f.origin})", f.data) for k, f in enumerate(fresh, 1)]

    def _build_reference(self):
        """(runner, compiler errors) for the reference; flags it may not use are a user error."""
        return build_reference(self.path, self.language, self.source, self.std)

    def flags(self, code: str) -> list[str]:
        return source_flags_for(self.path, self.language, code, self.std)

    def _check_toolchain(self) -> None:
        if self.language != "python" and compiler_version(self.language) == "missing":
            raise EnvironmentMissing(f"no {'gcc' if self.language == 'c' else 'g++'} on PATH: install a C/C++ "
                                     f"compiler to optimize {self.path.name}")

    def prepare_reference(self) -> None:
        """Build and run the reference on every input; a broken program is a one-line error."""
        self._check_toolchain()
        runner, err = self._build_reference()
        with runner:
            if err:
                first = next((line for line in err.splitlines() if "error" in line), err.splitlines()[0])
                raise UserInputError(f"{self.path.name} does not compile: {first.strip()[:200]}")
            for inp in self.inputs:
                r = runner.run(inp.data, INPUT_TIMEOUT_S)
                if r.timed_out:
                    raise UserInputError(f"{self.path.name} times out on {inp.name} (over {INPUT_TIMEOUT_S:.0f}s); "
                                         f"give smaller tests")
                if r.rc != 0:
                    raise UserInputError(f"{self.path.name} fails on {inp.name}: {r.failure()}")
                if inp.expected is not None:
                    diff = self.checker.differ(inp.expected, r.stdout)
                    if diff:
                        raise UserInputError(f"{self.path.name}'s output on {inp.name} differs from its .out file "
                                             f"({diff}); fix the test or pick --checker tokens|float:TOL")
                inp.ref_output, inp.ref_ms = r.stdout, r.wall_ms
                if self.counting:
                    inp.ref_instructions = runner.run(inp.data, INPUT_TIMEOUT_S * 100, count=True).instructions

    # -- Target protocol -----------------------------------------------------------------
    def baseline_code(self) -> str:
        return self.source

    def view(self, code: str) -> str:
        return code

    def apply_answer(self, answer: str, parent_code: str) -> tuple[str, str]:
        return code_from_program_answer(answer, parent_code, self.language)

    def evaluate(self, candidate_file: Path, hidden_paths: list[str]) -> dict:
        return evaluate_program(self, candidate_file, hidden_paths)

    def use_run_dir(self, run_dir: Path) -> None:
        pass  # nothing of its own to keep there

    def write_best(self, run_dir: Path, code: str) -> None:
        pass  # best/solution<suffix> is the whole answer
