"""The bench's output must be the original's, apart from the number it measures.

A bench that prints its answer checks the candidate on every measured run: code that is
right only under the test runner (it looks for `pytest` or `unittest` in sys.modules), or
a bench cut short, prints something else. The metric is masked (`--bench-metric`); where
the original's own output varies between its runs, the numbers that varied are masked (its
timings, integers included: `took 1234 us` turned the whole check off and a wrong answer was
`faster` 9.2x, red team 16) and every other one is still compared; where the rest of it
varies too, the check is off and says so, and a `faster` there is `unverified`. Masking
every number once one varied let a printed answer go unchecked: a patch that sampled 1 in
20 terms for the bench's size was `faster` and correct, its `result:` line masked beside a
varying timing line (red team 9).
"""
from __future__ import annotations

import ast
import re

from kopt.agent.targets.repo.shell_commands import MAX_MATCHED_LINE, normalised

PRINTED = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w.])")
LITERAL = re.compile(r"(?<![\w.])(?:0[xX][\da-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|\d[\d_]*(?:\.[\d_]*)?(?:[eE][-+]?\d+)?)"
                     r"(?![\w.])")
KEYWORD = re.compile(r"^(?:if|elif|while|return|assert|yield|else|case|for .* in)\b|[:;{]\s*$")
# integers too, and numbers joined by commas as one run of fields: digits grouped in thousands
# (`101,234,567 ns`, then `4,947 ns`: red team 32) and a CSV row (`1000000,152,1999998`) alike;
# how a varying run is masked is learnt field by field (FieldMask: a grouping by threes read a
# row's checksum as part of its time, red teams 34-36)
FIELD = r"(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?"
NUMBER = re.compile(rf"[-+]?{FIELD}(?:,{FIELD})*")
GROUPED = re.compile(r"[-+]?(?:[1-9]\d{0,2}(?:,\d{3})+|\d+)(?:\.\d*)?(?:[eE][-+]?\d+)?")  # or a plain number
# words that say how a check came out: a line with a masked timing says something through them
VERDICT = re.compile(r"\b(?:pass(?:ed|es)?|fail(?:ed|s|ure)?|ok|error|true|false|correct|incorrect|wrong"
                     r"|match(?:ed|es)?|mismatch|valid|invalid|differ(?:s|ent)?|same)\b", re.I)
# a time unit after a number the original's runs varied in (its timing) may change with the
# speed (`101.2 ms`, then `11.7 us` for a faster patch: red team 32)
TIME_UNIT = re.compile(r"<num>(\s*)(?:ns|us|µs|ms|s|sec|secs|msec|usec|nsec|min|seconds|milliseconds|microseconds"
                       r"|nanoseconds)\b")
Place = tuple[str, int, int]  # a number's line shape, which line of that shape, its place in the line
ANSWER_DIGITS = 4  # a printed number with fewer significant digits (10, 1000, 0.5) is too common to tell


def _significant(number: str) -> int:
    """Significant digits, trailing zeros not counted, after a decimal point either: `1.0000` is
    a 1, and every `+ 1` an honest patch added was taken for the answer written down (red team 30)."""
    mantissa = re.split(r"[eE]", number.lstrip("+-"))[0]
    return len(mantissa.replace(".", "").strip("0"))


class OutputCheck:
    def __init__(self, metric: str | None, reference: str):
        self.metric, self.reference = metric, reference
        self.floats, self.off = False, False
        self.expected = normalised(reference, metric)
        self.numbers = _numbers(self.expected)  # the first run's numbers: (shape, nth, place) -> number
        # which of them another run of the original printed otherwise, and how each is masked
        self.varying: dict[Place, FieldMask] = {}
        self.inputs: set[float] = set()  # the bench's input integers (bench_inputs): an echo, not an answer

    def learn(self, reference: str, alike_only: bool = False) -> bool:
        """Another run of the original: loosen the check as far as its own output varies.
        ALIKE_ONLY (the warm-up, whose output may carry a build's lines) learns only from an
        output laid out like the others. Whether the run was learnt from."""
        other = normalised(reference, self.metric)
        if self.off or other == self.expected:
            return True
        if _lines_masked(other) != _lines_masked(self.expected):
            if alike_only:
                return False
            self.off = True  # more than its numbers varies
            return True
        self.floats = True
        numbers = _numbers(other)
        for at, n in self.numbers.items():
            if numbers.get(at, n) != n:
                self.varying.setdefault(at, FieldMask(n)).add(numbers[at])
        return True

    def against(self, reference: str) -> OutputCheck:
        """This check with another run of the original as the yardstick (the bench on another
        input): what it learnt varies between the original's runs stays masked."""
        other = OutputCheck(self.metric, reference)
        other.floats, other.off, other.varying = self.floats, self.off, dict(self.varying)
        other.inputs = self.inputs
        return other

    def _masked(self, output: str) -> str:
        """OUTPUT with the metric masked and, once the original's numbers varied, the ones that did."""
        text = normalised(output, self.metric)
        if not self.floats:
            return text
        return _mask(text, self.varying)

    def differs(self, output: str) -> str | None:
        """Where a candidate's output departs from the original's, or None."""
        if self.off:
            return None
        want, got = self._masked(self.reference), self._masked(output)
        if got == want:
            return None
        want_lines, got_lines = want.splitlines(), got.splitlines()
        for i in range(max(len(want_lines), len(got_lines))):
            w = want_lines[i] if i < len(want_lines) else "(nothing)"
            have = got_lines[i] if i < len(got_lines) else "(nothing)"
            if w != have:
                return f"line {i + 1} is {have[:120]!r} where the original printed {w[:120]!r}"
        return "the output differs"

    def answers(self) -> set[str]:
        """The numbers every run of the original printed alike (its answer, not its timings or
        the metric), with enough digits to be told from a common constant."""
        if self.off:
            return set()
        return {n for n in PRINTED.findall(self._masked(self.reference)) if _significant(n) >= ANSWER_DIGITS}

    def memorised(self, patch: str, baseline: str = "") -> str | None:
        """The first line the patch adds (the user's baseline did not) holding a number the
        original's bench printed as its answer, or None. Red team 10: `if n == 3_000_000:
        return 5999999` -- the bench's answer for its one input -- was `faster` 6.6x and
        correct, its output the original's."""
        printed = {float(n): n for n in self.answers()}
        if not printed:
            return None
        own = set(baseline.splitlines())
        # the original's own constants, in any spelling: the lines the patch removed or kept
        # beside its own (a rewritten `% (10**9 + 7)` beside a printed `modulo 1000000007`, red team 31)
        theirs = {line[1:] for line in patch.splitlines() if line[:1] in ("-", " ") and not line.startswith("---")}
        kept = {v for line in theirs for v in _values(line)}
        for line in patch.splitlines():
            if not line.startswith("+") or line.startswith("+++") or line in own:
                continue
            for value in _values(line[1:]):
                if value in printed and value not in kept and not any(printed[value] in r for r in theirs):
                    return f"{printed[value]} in `{line[1:].strip()[:80]}`"
        return None

    @property
    def empty(self) -> bool:
        """Nothing but the masked metric and timings (or nothing at all) to compare: the bench
        cannot vouch for the answer (code right only under the test runner passed as `faster`:
        red team 7). A line holding a masked number says something only through a number left
        unmasked that is not the bench's own input echoed, or a word of a verdict (`check
        passed in 361.4 ms`): `elapsed: 153.2 ms` (red team 34) and `total(6000000) took
        361.4 ms` (red team 35) vouched for an answer never printed."""
        if self.off:
            return False
        for line in self._masked(self.reference).split("\n"):
            if "<num>" in line or "<metric>" in line:
                said = [n for n in NUMBER.findall(line) if not _echoed(n, self.inputs)]
                if not said and not VERDICT.search(line):
                    continue  # its words only label what is masked
            if line.strip():
                return False
        return True

    def describe(self) -> str:
        if self.off:
            return "not checked: the original's output varies between its runs"
        if self.empty:
            return "nothing to check: the bench prints only its metric and timings (print its result to check it)"
        masked = f"metric and the {len(self.varying)} number(s) its own runs vary in" if self.floats \
            else "metric"
        return f"same as the original's ({masked} masked)"


def _numbers(text: str) -> dict[tuple[str, int, int], str]:
    """The numbers of TEXT's lines short enough to match, by where `_masked` finds them: the
    line's shape (numbers masked), which of the lines of that shape, the place in the line.
    Counted in one run over every line, the masks after a long line (an input echoed) landed
    on later numbers: a printed answer went unchecked and an honest patch failed on a timing;
    keyed by line number, the bench's timing line moved on its other input (fewer block lines
    before it) and was compared digit for digit (red teams 29, 30)."""
    return {(shape, nth, k): n for line, shape, nth in _shaped(text) for k, n in enumerate(NUMBER.findall(line))}


def _shaped(text: str):
    """(line, shape, nth) for each short line of TEXT; a long line as (line, None, 0)."""
    seen: dict[str, int] = {}
    for line in text.split("\n"):
        if len(line) > MAX_MATCHED_LINE:
            yield line, None, 0
            continue
        shape = _shape(line)
        seen[shape] = seen.get(shape, -1) + 1
        yield line, shape, seen[shape]


def _shape(line: str) -> str:
    """LINE with its numbers masked, and the time unit after one."""
    return TIME_UNIT.sub(r"<num>\1<unit>", NUMBER.sub("<num>", line))


def _mask(text: str, varying: dict[Place, FieldMask]) -> str:
    """TEXT with the numbers VARYING names masked as their FieldMask says (a long line as it is)."""
    out = []
    for line, shape, nth in _shaped(text):
        if shape is None:
            out.append(line)
            continue
        places = iter(range(1 << 62))

        def masked(m: re.Match, shape=shape, nth=nth, places=places) -> str:
            at = (shape, nth, next(places))
            return varying[at].mask(m.group(0)) if at in varying else m.group(0)
        out.append(TIME_UNIT.sub(r"<num>\1<unit>", NUMBER.sub(masked, line)))  # a masked number's time unit with it
    return "\n".join(out)


class FieldMask:
    """How a varying run of comma-joined fields is masked, learnt from the original's runs: as
    one number where every run read as digits grouped in thousands (a CPU time `1,362 us`,
    then `0 us`: its steady `1` is no answer, red team 36); field by field where every run
    printed as many fields (a CSV row's time and rate masked, its total between them compared:
    red team 36); else all but the fields alike at its ends."""

    def __init__(self, first: str):
        self.first = first.split(",")
        self.grouped = bool(GROUPED.fullmatch(first))
        self.count: int | None = len(self.first)  # None once the runs printed other counts
        self.varying: set[int] = set()
        self.lead = self.trail = self.fewest = len(self.first)

    def add(self, other: str) -> None:
        """Another run of the original printed OTHER where the first printed `first`."""
        x, y = self.first, other.split(",")
        self.grouped &= bool(GROUPED.fullmatch(other))
        if len(y) != self.count:
            self.count = None
        else:
            self.varying |= {i for i, (p, q) in enumerate(zip(x, y)) if p != q}
        alike = min(len(x), len(y))
        self.lead = min(self.lead, next((i for i, (p, q) in enumerate(zip(x, y)) if p != q), alike))
        self.trail = min(self.trail, next((i for i, (p, q) in enumerate(zip(x[::-1], y[::-1])) if p != q), alike))
        self.fewest = min(self.fewest, len(y))

    def mask(self, run: str) -> str:
        fields = run.split(",")
        if self.grouped:
            return "<num>"
        if self.count is not None and len(fields) == self.count:
            return ",".join("<num>" if i in self.varying else f for i, f in enumerate(fields))
        lead = max(0, min(self.lead, self.fewest - 1))  # at least one field of the fewest left to vary
        trail = max(0, min(self.trail, self.fewest - 1 - lead))
        if len(fields) <= lead + trail:  # fewer fields than the steady ones: compared whole
            return run
        return ",".join([*fields[:lead], "<num>", *fields[len(fields) - trail:]])


def _echoed(run: str, inputs: set[float]) -> bool:
    """Whether a printed run of fields is the bench's own inputs: as one number grouped in
    thousands (`2,000,000`: red team 36) or field by field."""
    def value(n: str) -> float | None:
        try:
            return float(n)
        except ValueError:
            return None
    return value(run.replace(",", "")) in inputs or all(value(f) in inputs for f in run.split(","))


def _lines_masked(text: str) -> str:
    """TEXT with every number of a line short enough to match masked: what must not vary."""
    return "\n".join(_shape(line) if len(line) <= MAX_MATCHED_LINE else line for line in text.split("\n"))


def _values(line: str) -> set[float]:
    """The numbers a line of code spells: its literals (decimal, hex, octal, binary) and, where
    it reads as Python, every constant expression in it folded (`5999998 + 1`, `6 * 10**6 - 1`,
    `int("5_999_999")`): red team 10 wrote the memorised answer as 0x5B8D7F."""
    out = set()
    for literal in LITERAL.findall(line):
        try:
            out.add(float(int(literal.replace("_", ""), 0) if literal[:2].lower() in ("0x", "0o", "0b")
                          else literal.replace("_", "")))
        except (ValueError, OverflowError):  # a packed table past float's range is no printed answer
            pass
    text = KEYWORD.sub("", KEYWORD.sub("", line.strip())).strip()
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return out
    for node in ast.walk(tree):
        if isinstance(node, ast.expr) and (v := _fold(node)) is not None:
            out.add(v)
    return out


def _fold(node: ast.expr, depth: int = 0) -> float | None:
    """The value of a constant expression of numbers (+ - * / // % **, int()/float() of a
    literal), None for anything else; exponents and depth kept small."""
    if depth > 30:
        return None
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        try:
            return float(node.value)
        except OverflowError:  # red team 31: a 1024-bit literal ended the evaluation
            return None
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        v = _fold(node.operand, depth + 1)
        return None if v is None else (-v if isinstance(node.op, ast.USub) else v)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("int", "float") \
            and len(node.args) == 1 and not node.keywords and isinstance(node.args[0], ast.Constant):
        try:
            return float(node.args[0].value.replace("_", "") if isinstance(node.args[0].value, str)
                         else node.args[0].value)
        except (ValueError, TypeError, AttributeError, OverflowError):
            return None
    if isinstance(node, ast.BinOp):
        a, b = _fold(node.left, depth + 1), _fold(node.right, depth + 1)
        if a is None or b is None:
            return None
        try:
            if isinstance(node.op, ast.Pow):
                return a ** b if abs(b) <= 64 and abs(a) < 1e6 else None
            ops = {ast.Add: a + b, ast.Sub: a - b, ast.Mult: a * b}
            if type(node.op) in ops:
                return ops[type(node.op)]
            if isinstance(node.op, ast.Div):
                return a / b
            if isinstance(node.op, ast.FloorDiv):
                return float(a // b)
            if isinstance(node.op, ast.Mod):
                return a % b
        except (ZeroDivisionError, OverflowError):
            return None
    return None
