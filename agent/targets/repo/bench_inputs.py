"""The bench run on an input the candidate cannot know: its sizes changed.

A patch can special-case the one input the bench gives (`if n == 3_000_000: return
5999999`, the answer written down in pieces no spelling check can enumerate: red team 10)
and every test and every bench run passes. So a candidate judged faster also runs the bench
with one of its integers changed to a value drawn in secret -- a number in the bench command
itself, else an integer literal in a file the command names (`bench.py`, `bench.sh`,
`-m bench`) -- and must print what the original prints there. A bench whose input is
elsewhere (a make target's sources, a data file) gets no second input: said in the result.
A change the original fails on, or whose output does not move, tells nothing and the next
integer is tried (as a KernelBench trial the reference rejects is skipped, never blamed on
the candidate).
"""
from __future__ import annotations

import io
import re
import secrets
import shlex
import tokenize
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

INTEGER = re.compile(r"(?<![\w.])(\d[\d_]*)(?![\w.])")
WHOLE_FLOAT = re.compile(r"\d[\d_]*(?:\.0*)?(?:[eE]\+?\d+)?")  # 3e6, 3_000_000.0: a size spelt as a float
ARGUMENT = re.compile(r"(?:(?<=\s)|(?<==)|^)(\d+)(?=\s|$)")  # a whole word of the command, or after `=`
MIN_VALUE = 8  # smaller integers are flags, indices and exponents more often than sizes
MAX_VARIANTS = 3
MAX_BENCH_FILE = 256 << 10


@dataclass
class Variant:
    """The bench with some of its integers changed: the command to run and the files to write
    over the tree first (relative path -> text). `again()` is the same change with values
    drawn anew: every timed round of the second input runs its own draw."""
    what: str
    command: str
    files: dict[str, str] = field(default_factory=dict)
    again: Callable[[], Variant] | None = field(default=None, repr=False, compare=False)


def changed(value: int) -> int:
    """A size a special case keyed on the original would miss, drawn in secret for every
    evaluation (a fixed formula's value was memorised beside the original's: red team 12):
    anywhere in [0.8 value, value), of the other parity (a kernel's even-only path shows too).
    Not lower: a quadratic bench at half its size was mostly start-up, and an honest 2x
    patch read `same` there."""
    low = max(1, value - value // 5)
    new = low + secrets.randbelow(max(1, value - low))
    if new % 2 == value % 2:
        new = new + 1 if new + 1 < value else new - 1
    return max(1, new)


def _python_integers(text: str) -> list[tuple[int, int, str]]:
    """(start, end, literal) of the integer literals of Python source, outside strings and
    comments; [] where it does not tokenize."""
    starts = [0]
    for line in text.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    found = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type == tokenize.NUMBER and (INTEGER.fullmatch(tok.string) or _whole(tok.string)):
                at = starts[tok.start[0] - 1] + tok.start[1]
                found.append((at, at + len(tok.string), tok.string))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return []
    return found


def _integers(text: str, python: bool) -> list[tuple[int, int, str]]:
    if python:
        return _python_integers(text)
    return [(m.start(), m.end(), m.group(1)) for m in INTEGER.finditer(text)]


def _whole(literal: str) -> bool:
    """A float literal of a whole number below 2**53 (`int(3e6)` hid the bench's size: red team 15)."""
    if not WHOLE_FLOAT.fullmatch(literal):
        return False
    try:
        value = float(literal.replace("_", ""))
    except (ValueError, OverflowError):
        return False
    return value.is_integer() and value < 2**53


def _value(literal: str) -> int:
    """An integer literal's value, or a whole float literal's (`_whole`)."""
    digits = literal.replace("_", "")
    return int(digits) if INTEGER.fullmatch(literal) else int(float(digits))


def _spelled(literal: str, value: int) -> str:
    """VALUE written as LITERAL's kind: a float literal stays a float."""
    return str(value) if INTEGER.fullmatch(literal) else f"{value}.0"


def _named_paths(words: list[str]) -> list[str]:
    """The words of a command as paths, `-m pkg.mod` as the files Python would run for it."""
    out = []
    for i, w in enumerate(words):
        if words[i - 1:i] == ["-m"]:
            module = w.replace(".", "/")
            out += [f"{module}.py", f"{module}/__main__.py"]
        else:
            out.append(w)
    return out


def _bench_files(command: str, root: Path) -> list[str]:
    """Text files of the tree (ROOT: where the command runs) that the command names."""
    try:
        words = shlex.split(command)
    except ValueError:
        return []
    out = []
    base = root.resolve()
    for w in _named_paths(words):
        path = (root / w)
        try:
            real = path.resolve()
            if not real.is_relative_to(base) or path.is_symlink() or not real.is_file():
                continue
            if real.stat().st_size > MAX_BENCH_FILE:
                continue
            real.read_bytes().decode()
        except (OSError, UnicodeDecodeError, ValueError):
            continue
        rel = str(real.relative_to(base))
        if rel not in out:
            out.append(rel)
    return out


Spans = dict[str, dict[int, list[tuple[int, int, str]]]]  # key -> value -> (start, end, literal)


def _spans(command: str, root: Path, subdir: str = "") -> tuple[dict[str, str], dict[str, str], Spans]:
    """(texts, names, integer spans) of the command (key "") and of the files it names (keys
    relative to ROOT; names as the command spells them)."""
    where = root / subdir if subdir else root
    sources = {"": command}
    names: dict[str, str] = {}
    spans: Spans = {"": {}}
    for m in ARGUMENT.finditer(command):
        spans[""].setdefault(_value(m.group(1)), []).append((m.start(1), m.end(1), m.group(1)))
    for rel in _bench_files(command, where):
        key = str(Path(subdir) / rel) if subdir else rel
        sources[key], names[key] = (where / rel).read_text(), rel
        spans[key] = {}
        for start, end, literal in _integers(sources[key], python=rel.endswith(".py")):
            spans[key].setdefault(_value(literal), []).append((start, end, literal))
    return sources, names, spans


def input_values(command: str, root: Path, subdir: str = "") -> set[int]:
    """The bench's integers that `variants` changes (its inputs) and every number of the command
    itself (`python -m timeit -n 1 -r 5` prints `1 loop, best of 5`): what a bench may echo."""
    spans = _spans(command, root, subdir)[2]
    return {v for at in spans.values() for v in at if v >= MIN_VALUE} | set(spans[""])


def variants(command: str, root: Path, subdir: str = "") -> list[Variant]:
    """The bench with every integer of 8 or more changed at once (each value to its own secret
    draw), then up to MAX_VARIANTS benches with one changed, the largest first: the command's
    own numbers and the literals of the files it names (ROOT is the original's tree; file
    keys are relative to it, SUBDIR is where the command runs). All at once first: changing
    only the largest integer, a repeat count (3000 runs of size 2000), left the size a patch
    special-cased as it was (red team 13)."""
    sources, names, spans = _spans(command, root, subdir)
    draws = {v: changed(v) for at in spans.values() for v in at if v >= MIN_VALUE}

    def variant(what: str, values: set[int], drawn: dict[int, int] = draws) -> Variant:
        texts = dict(sources)
        for key, at in spans.items():
            for start, end, _ in sorted((x for v in values for x in at.get(v, ())), reverse=True):
                old = texts[key][start:end]
                texts[key] = texts[key][:start] + _spelled(old, drawn[_value(old)]) + texts[key][end:]
        return Variant(what, texts.pop(""), {k: t for k, t in texts.items() if t != sources[k]},
                       again=lambda: variant(what, values, {v: changed(v) for v in values}))

    singles = []
    for key, at in spans.items():
        for v, places in at.items():
            if v >= MIN_VALUE:
                name = "the bench command's" if key == "" else f"{names[key]}'s"
                singles.append((v, variant(f"{name} {places[0][2]} as {draws[v]}", {v})))
    singles.sort(key=lambda p: -p[0])
    out = [v for _, v in singles[:MAX_VARIANTS]]
    if len(draws) > 1:
        every = ", ".join(f"{v} as {new}" for v, new in sorted(draws.items(), reverse=True)[:6])
        out.insert(0, variant(f"every integer of {MIN_VALUE} or more changed ({every})", set(draws)))
    return out
