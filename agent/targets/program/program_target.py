"""Programs as search targets: one C/C++ or Python source that reads stdin and writes stdout.

The reference program is built and run once on every input (tests plus stress inputs) when
the target loads; its outputs (or the tests' `.out` files) are the truth and its instruction
counts are cached. A candidate is then built and run in its own sandbox, with the reference
source, the tests and the run directory hidden from it: correctness on every input first,
then exact instruction counts (cachegrind) and interleaved wall-time rounds against the
reference. The instruction-count ratio is the speedup when valgrind exists (repeatable on a
busy machine); the wall-time ratio with its bootstrap CI is reported beside it and must not
contradict it.
"""
from __future__ import annotations

import random
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from kopt.agent.errors import EnvironmentMissing, UserInputError
from kopt.agent.proposers.prompting.answers import EditError, program_from_answer
from kopt.agent.stress.cost_search import CostMeter, StressSearch
from kopt.agent.stress.validator import Validator
from kopt.sandboxes.program_runner import (
    FlagError,
    ProgramRunner,
    RunnerError,
    RunResult,
    build_runner,
    compiler_version,
    language_of,
    source_flags_for,
    valgrind_path,
)
from kopt.sandboxes.timing import estimate_speedup, speed_verdict

INPUT_TIMEOUT_S = 10.0     # the reference must finish each input within this
INSTRUCTION_FLOOR = 0.02   # instruction counts are exact: 2% is a real difference
WALL_NOISE_FLOOR = 0.1
# A candidate's wall time may be at most AGREE_FACTOR x what its instruction ratio predicts, plus
# AGREE_SLACK_MS, when the reference's own work (start-ups excluded) is measurable; below that the
# check still runs, with the looser SHORT_* bounds (short runs are mostly start-up and jitter)
AGREE_FACTOR = 4.0
AGREE_SLACK_MS = 5.0
MEASURABLE_WORK_MS = 20.0
SHORT_AGREE_FACTOR = 8.0
SHORT_AGREE_SLACK_MS = 20.0
STARTUP_RUNS = 5
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


@dataclass
class ProgramInput:
    name: str
    data: bytes
    expected: bytes | None = None     # from NAME.out when the tests have one
    ref_output: bytes = b""
    ref_ms: float = 0.0
    ref_instructions: int | None = None


@dataclass
class Checker:
    """How outputs are compared: exact (trailing spaces and blank lines at the end ignored),
    tokens (any whitespace), or float:TOL (tokens; numbers equal within TOL abs or rel)."""

    mode: str = "exact"
    tol: float = 0.0

    @classmethod
    def parse(cls, spec: str | None) -> Checker:
        spec = (spec or "exact").strip()
        if spec in ("exact", "tokens"):
            return cls(spec)
        m = re.fullmatch(r"float:([0-9.eE+-]+)", spec)
        if m:
            try:
                return cls("float", float(m.group(1)))
            except ValueError:
                pass
        raise UserInputError(f"unknown --checker {spec!r}; use exact, tokens or float:TOL (e.g. float:1e-6)")

    def describe(self) -> str:
        return f"float:{self.tol:g}" if self.mode == "float" else self.mode

    def _units(self, data: bytes) -> list:
        if self.mode == "exact":
            return [line.rstrip() for line in data.decode(errors="replace").rstrip().splitlines()]
        return data.split()

    def _same(self, x, y) -> bool:
        return x == y or (self.mode == "float" and _close(x, y, self.tol))

    def differ(self, want: bytes, got: bytes) -> str:
        """'' when GOT is acceptable, else a short description of the first difference."""
        a, b = self._units(want), self._units(got)
        unit = "line" if self.mode == "exact" else "token"
        for i, (x, y) in enumerate(zip(a, b), 1):
            if not self._same(x, y):
                if unit == "token":
                    x, y = x[:40].decode(errors="replace"), y[:40].decode(errors="replace")
                return f"{unit} {i}: expected {x[:60]!r}, got {y[:60]!r}"
        return "" if len(a) == len(b) else f"expected {len(a)} {unit}s, got {len(b)}"

    def count_differences(self, want: bytes, got: bytes) -> int:
        """How many lines (tokens) of GOT differ: for the user only -- a candidate can make the
        exact number encode a hidden input, so the model sees `coarse_difference`."""
        a, b = self._units(want), self._units(got)
        return sum(not self._same(x, y) for x, y in zip(a, b)) + abs(len(a) - len(b))

    def coarse_difference(self, n: int) -> str:
        """'1 line differs' or 'several lines differ': all of N that may reach the model."""
        unit = "line" if self.mode == "exact" else "token"
        return f"1 {unit} differs" if n == 1 else f"several {unit}s differ"


def _close(x: bytes, y: bytes, tol: float) -> bool:
    try:
        fx, fy = float(x), float(y)
    except ValueError:
        return False
    return abs(fx - fy) <= tol * max(1.0, abs(fx))


def read_inputs(folder: Path, what: str) -> list[ProgramInput]:
    """NAME.in files (with NAME.out when present) of a tests folder; for a stress folder any file."""
    if not folder.is_dir():
        raise UserInputError(f"{what} folder not found: {folder}")
    files = sorted(folder.glob("*.in")) or sorted(f for f in folder.iterdir() if f.is_file() and f.suffix != ".out")
    if not files:
        raise UserInputError(f"{what} folder {folder} holds no input files (NAME.in, with NAME.out optional)")
    out = []
    for f in files:
        expected = f.with_suffix(".out")
        out.append(ProgramInput(f"{folder.name}/{f.name}", f.read_bytes(),
                                expected.read_bytes() if expected.exists() else None))
    return out


def ratio_ci(ref: list[int], new: list[int], resamples: int = 1000, seed: int = 0) -> tuple[float, float]:
    """Bootstrap over inputs of sum(ref)/sum(new): how much the speedup depends on which inputs."""
    rng = random.Random(seed)
    idx = range(len(ref))
    boot = []
    for _ in range(resamples):
        pick = rng.choices(idx, k=len(ref))
        boot.append(sum(ref[i] for i in pick) / max(1, sum(new[i] for i in pick)))
    boot.sort()
    return boot[int(0.025 * resamples)], boot[min(resamples - 1, int(0.975 * resamples))]


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


class _Verdict(Exception):
    def __init__(self, verdict: str, reason: str, compiled: bool = True):
        super().__init__(reason)
        self.verdict, self.reason, self.compiled = verdict, reason, compiled


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
            raise UserInputError(f"{', '.join('--' + k.replace('_', '-') for k in unknown)} does not apply to a "
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
        try:
            flags = self.flags(self.source)
        except FlagError as e:
            raise UserInputError(f"{self.path.name}: {e}") from None
        return build_runner("reference", self.source, self.language, flags)

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
        code = Path(candidate_file).read_text()
        result = {"task": str(self.path), "solution": str(candidate_file), "device": "cpu", "compiled": False,
                  "correct": False, "speedup": None, "speedup_ci": None, "ref_ms": None, "new_ms": None,
                  "checks": {"inputs": len(self.inputs), "checker": self.checker.describe()},
                  "kernel": "python" if self.language == "python" else "cpp"}
        hide = (str(self.path), *self.private_paths, *hidden_paths)
        detail: dict = {}  # the full text of a failure, for the user (never in `reason`)
        try:
            try:
                flags = self.flags(code)
            except FlagError as e:
                raise _Verdict("rejected", str(e), compiled=False) from None
            result["checks"]["flags"] = " ".join(flags)
            result["checks"]["compiler"] = compiler_version(self.language)
            new, err = build_runner("candidate", code, self.language, flags, hide)
            with new:
                if err:
                    raise _Verdict("compile_error", err.splitlines()[0][:300] if err else "compile failed", False)
                result["compiled"] = True
                self._check_outputs(new, detail)
                result["correct"] = True
                ref, _ = build_runner("reference", self.source, self.language, self.flags(self.source))
                with ref:
                    self._measure(new, ref, result, detail)
        except _Verdict as v:
            # a measured run that is not correct (or a rejection) unmeasures the candidate
            result.update(verdict=v.verdict, reason=v.reason, compiled=v.compiled and result["compiled"],
                          correct=False, speedup=None, speedup_ci=None)
        except RunnerError as e:
            detail["failure"] = str(e)[:2000]
            result.update(verdict="runtime_error", reason=str(e).split(":", 1)[0][:200], correct=False,
                          speedup=None, speedup_ci=None)
        if detail:
            result["checks"]["detail"] = detail
        return result

    # -- evaluation steps ----------------------------------------------------------------
    def _timeout(self, inp: ProgramInput) -> float:
        return max(2.0, 10 * inp.ref_ms / 1000)

    def _judge(self, k: int, r: RunResult, when: str, detail: dict) -> None:
        """Raise the verdict for a run on input K that is not correct -- on every run, checked,
        counted or timed alike. The reason names the input by number and says how the run ended,
        never what it printed or what was expected: reasons reach the model. Nor does it give the
        exit code or the exact number of lines that differ: a candidate can make those encode a
        hidden input (exit code = x % 200 + 1). All of it (exit code, stderr, the first
        difference, the count) goes to `checks.detail`, for the user."""
        inp = self.inputs[k - 1]
        where = f"hidden test {k}{when}"
        if r.timed_out:
            detail.update(input=inp.name, failure=r.failure())
            raise _Verdict("timeout", f"timed out on {where} (limit {self._timeout(inp):.1f}s, reference "
                                      f"{inp.ref_ms:.0f} ms)")
        if r.rc != 0:
            detail.update(input=inp.name, failure=r.failure())
            raise _Verdict("runtime_error", f"crashed on {where}")
        want = inp.expected if inp.expected is not None else inp.ref_output
        diff = self.checker.differ(want, r.stdout)
        if diff:
            n = self.checker.count_differences(want, r.stdout)
            detail.update(input=inp.name, difference=diff, differing=n, stderr=r.stderr[-1000:])
            raise _Verdict("incorrect", f"wrong on {where} ({self.checker.coarse_difference(n)})")

    def _check_outputs(self, new: ProgramRunner, detail: dict) -> None:
        for k, inp in enumerate(self.inputs, 1):
            self._judge(k, new.run(inp.data, self._timeout(inp)), "", detail)

    def _counts(self, new: ProgramRunner, detail: dict) -> list[int] | None:
        if not self.counting or any(i.ref_instructions is None for i in self.inputs):
            return None
        counts = []
        for k, inp in enumerate(self.inputs, 1):
            r = new.run(inp.data, self._timeout(inp) * 100, count=True)
            if r.rc == -4 and not r.timed_out:
                return None  # SIGILL: valgrind cannot decode this build (e.g. AVX-512 from -march=native)
            self._judge(k, r, " when its instructions were counted", detail)
            if r.left_running:
                raise _Verdict("rejected", f"left processes running after it exited on hidden test {k} when its "
                                           f"instructions were counted (their work cannot be counted)")
            if r.instructions is None:
                raise _Verdict("runtime_error", f"no instruction count on hidden test {k} (valgrind)")
            counts.append(r.instructions)
        return counts

    def _rounds(self, new: ProgramRunner, ref: ProgramRunner,
                detail: dict) -> tuple[list[float], list[float], list[list[float]]]:
        """Rounds of candidate, reference, reference, candidate (ABBA) per input: whichever runs
        second in a pair measured ~1 ms slower here, and the mirrored order cancels that out.
        Every candidate run's output is checked: a run that is not correct is not measured."""
        ref_ms, new_ms, per_input = [], [], [[[], []] for _ in self.inputs]
        start = time.monotonic()
        for r_k in range(self.rounds):
            if r_k >= 3 and time.monotonic() - start > self.max_timing_s:
                break
            rn = rr = 0.0
            for i, inp in enumerate(self.inputs):
                a1 = new.run(inp.data, self._timeout(inp))
                b1 = ref.run(inp.data, INPUT_TIMEOUT_S)
                b2 = ref.run(inp.data, INPUT_TIMEOUT_S)
                a2 = new.run(inp.data, self._timeout(inp))
                for a in (a1, a2):
                    self._judge(i + 1, a, " in a timed run", detail)
                a_ms, b_ms = (a1.wall_ms + a2.wall_ms) / 2, (b1.wall_ms + b2.wall_ms) / 2
                rn, rr = rn + a_ms, rr + b_ms
                per_input[i][0].append(b_ms)
                per_input[i][1].append(a_ms)
            new_ms.append(rn)
            ref_ms.append(rr)
        return ref_ms, new_ms, per_input

    def _startup_ms(self, runner: ProgramRunner) -> float:
        """Wall time of starting an empty program in this sandbox: the part of every run that no
        rewrite can remove (the median of a few runs)."""
        argv = [sys.executable, "-S", "-c", "pass"] if self.language == "python" else ["true"]
        import statistics

        return statistics.median(runner.run(b"", INPUT_TIMEOUT_S, argv=argv).wall_ms for _ in range(STARTUP_RUNS))

    def _measure(self, new: ProgramRunner, ref: ProgramRunner, result: dict, detail: dict) -> None:
        import statistics

        counts = self._counts(new, detail)
        ref_ms, new_ms, per_input = self._rounds(new, ref, detail)
        wall = estimate_speedup(ref_ms, new_ms)
        wall_verdict = speed_verdict(wall, WALL_NOISE_FLOOR)
        checks = result["checks"]
        checks.update(trials=wall.rounds, wall_speedup=round(wall.speedup, 4),
                      wall_speedup_ci=[round(wall.ci[0], 4), round(wall.ci[1], 4)], wall_verdict=wall_verdict)
        rows = []
        for i, inp in enumerate(self.inputs):
            row = {"input": inp.name, "ref_ms": round(statistics.median(per_input[i][0]), 3),
                   "new_ms": round(statistics.median(per_input[i][1]), 3)}
            if counts:
                row.update(ref_instructions=inp.ref_instructions, new_instructions=counts[i])
            rows.append(row)
        checks["per_input"] = rows
        result.update(ref_ms=round(wall.ref_ms, 4), new_ms=round(wall.new_ms, 4))
        if counts:
            ref_counts = [i.ref_instructions for i in self.inputs]
            speedup = sum(ref_counts) / max(1, sum(counts))
            lo, hi = ratio_ci(ref_counts, counts)
            checks.update(metric="instructions (valgrind cachegrind; wall time beside it)",
                          ref_instructions=sum(ref_counts), new_instructions=sum(counts),
                          input_spread=[round(lo, 4), round(hi, 4)])
            verdict = ("faster" if speedup > 1 + INSTRUCTION_FLOOR else
                       "slower" if speedup < 1 / (1 + INSTRUCTION_FLOOR) else "same")
            self._agree(speedup, rows, self._startup_ms(ref), checks)
            if wall_verdict not in ("same", verdict) or (checks["wall_measurable"] and verdict == "faster"
                                                         and wall_verdict != "faster"):
                checks["metrics_disagree"] = f"instructions say {verdict}, wall time says {wall_verdict}"
                verdict = "same"
            # counts are exact, so the CI is the point; how much the ratio depends on which inputs
            # are chosen is `checks.input_spread` (a bootstrap over inputs)
            result.update(speedup=round(speedup, 4), speedup_ci=[round(speedup, 4), round(speedup, 4)],
                          verdict=verdict)
        else:
            checks["metric"] = ("wall time (valgrind not found: no instruction counts)" if not self.counting else
                                "wall time (valgrind cannot run this build, e.g. AVX-512 from -march=native)")
            result.update(speedup=round(wall.speedup, 4), speedup_ci=[round(wall.ci[0], 4), round(wall.ci[1], 4)],
                          verdict=wall_verdict)

    def _agree(self, speedup: float, rows: list[dict], startup_ms: float, checks: dict) -> None:
        """Reject a candidate whose instruction count claims far more than its wall time shows.

        Every run pays a start-up no rewrite removes, so with instruction ratio R the candidate
        should take about start-ups + (reference - start-ups) / R. When the reference's own work
        (its wall time less the start-ups) is long enough to measure, a candidate slower than
        AGREE_FACTOR x that plus AGREE_SLACK_MS (the noise of short runs) behaves differently
        when counted (e.g. it takes a short cut when LD_PRELOAD names valgrind's preload
        library): `rejected`. Shorter runs are judged too, with SHORT_AGREE_FACTOR and
        SHORT_AGREE_SLACK_MS: instructions never decide alone (a forged count once did)."""
        ref_ms, new_ms = sum(r["ref_ms"] for r in rows), sum(r["new_ms"] for r in rows)
        fixed = min(ref_ms, startup_ms * len(rows))
        work = ref_ms - fixed
        predicted_ms = fixed + work / max(speedup, 1e-9)
        measurable = work >= MEASURABLE_WORK_MS
        factor, slack = (AGREE_FACTOR, AGREE_SLACK_MS) if measurable else (SHORT_AGREE_FACTOR, SHORT_AGREE_SLACK_MS)
        checks.update(wall_measurable=measurable, startup_ms=round(startup_ms, 3),
                      predicted_new_ms=round(predicted_ms, 3))
        if new_ms > factor * predicted_ms + slack:
            raise _Verdict("rejected", f"behaves differently when measured: its instruction count ({speedup:.2f}x "
                                       f"fewer) predicts about {predicted_ms:.1f} ms, but its runs took "
                                       f"{new_ms:.1f} ms (allowed: {factor:g}x + {slack:g} ms)")
