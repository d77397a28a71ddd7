"""A program target's inputs (NAME.in files, NAME.out optional) and what counts as the right
output on one of them (`Checker`: exact, tokens or float:TOL)."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from kopt.agent.errors import UserInputError

INPUT_TIMEOUT_S = 10.0     # the reference must finish each input within this


@dataclass
class ProgramInput:
    name: str
    data: bytes
    expected: bytes | None = None     # from NAME.out when the tests have one
    ref_output: bytes = b""
    ref_ms: float = 0.0
    ref_instructions: int | None = None


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
            # surrogateescape, not replace: every invalid byte read as U+FFFD, so 16 constant 0x80
            # bytes matched any 16 input-dependent ones (red team 7)
            return [line.rstrip() for line in data.decode(errors="surrogateescape").rstrip().splitlines()]
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
    if not (math.isfinite(fx) and math.isfinite(fy)):
        # inf - y is inf, and inf <= tol * inf: any number matched an expected inf (red team 6)
        return fx == fy
    return abs(fx - fy) <= tol * max(1.0, abs(fx))
