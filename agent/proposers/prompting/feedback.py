"""What the model is told about one evaluation of its code: what a kernel engineer would read
before the next attempt.

The evaluator's structured fields are used when present (`checks.mismatch`,
`checks.error_detail`, compiler output) and the one-line `reason` otherwise. Program and
repository targets get only the verdict, the speedup and the reason: their details may hold
the hidden tests' inputs and outputs.
"""
from __future__ import annotations

import ast
import re

COMPILER_LINE = re.compile(r"(?P<file>[^\s:()]+)(?::(?P<line>\d+):(?:\d+:)?|\((?P<line2>\d+)\):) *"
                           r"(?:fatal )?error\b.*$")
# lines the build tools put before the solution's own source: load_cpp none, load_inline's main.cpp
# one include, its cuda.cu three
PREFIX_LINES = {"main.cpp": 1, "cuda.cu": 3}
EXCERPT = re.compile(r"^\s*(\d+)\s*\|\s?(.*)$")
MAX_ERRORS = 4
MAX_DETAIL = 1500

# the rules behind a `rejected` verdict, in the words a model can act on
RULES = (
    ("reads the reference task", "the solution must not open or import the task file; compute the result itself"),
    ("network access", "no sockets or network calls"),
    ("spawns a process", "no subprocesses during forward (build kernels at import or in __init__)"),
    ("patches the timer", "do not replace time/torch functions the harness uses"),
    ("tampers with the harness", "do not touch the evaluator's file descriptors or modules"),
    ("threads still running", "join every thread you start before forward returns"),
    ("still alive", "every process you start must have exited before forward returns"),
    ("work outside the timed", "do all the work inside forward: no background or deferred computation"),
    ("physically impossible", "the time per call is below what memory bandwidth allows: the outputs must be "
                              "computed for the inputs of each call, not cached or precomputed"),
    ("subclasses the reference", "define ModelNew from nn.Module, not as a subclass of Model"),
    ("wrong number of calls", "return exactly one output per forward call"),
)


def short_paths(text: str) -> str:
    """`/root/.cache/kopt/sbx/<hash>/native/<hash>/src.cpp:4:69: error` -> `src.cpp:4:69: error`: the
    sandbox's folders tell the model nothing and cost tokens."""
    return re.sub(r"(?:/[^\s/:]+)+/([^\s/:]+)", r"\1", text)


def describe(result: dict | None, code: str = "", checks: bool = True) -> str:
    """A few lines about one evaluation result, for the next prompt. With `checks` (the
    target's `checks_in_prompt`), what the evaluator's checks say too: compiler errors,
    mismatches, the rule broken, the memory bound, the profile; without, verdict and reason."""
    if not result:
        return "not evaluated yet"
    verdict = result.get("verdict") or "unknown"
    lines = [f"verdict: {verdict}" + _speed(result)]
    reason = short_paths(result.get("reason") or "").strip()
    if reason:
        lines.append(f"reason: {reason}")
    if not checks:
        return "\n".join(lines)
    checks = result.get("checks") or {}
    if verdict == "compile_error":
        lines += _compiler_errors(checks, reason, code)
    elif verdict == "incorrect" and isinstance(checks.get("mismatch"), dict):
        lines += _mismatch(checks["mismatch"])
    elif verdict == "runtime_error" and checks.get("error_detail"):
        lines += ["error (the solution's frames):", _clip(short_paths(str(checks["error_detail"])))]
    elif verdict == "rejected":
        rule = next((why for key, why in RULES if key in reason), None)
        if rule:
            lines.append(f"rule: {rule}")
    floor, new_ms = checks.get("memory_floor_ms"), result.get("new_ms")
    if floor and new_ms and result.get("correct"):
        lines.append(f"bound: moving this call's data through memory once takes {floor:.3f} ms; this candidate "
                     f"takes {new_ms / floor:.1f}x that")
    if checks.get("profile"):
        lines.append("this candidate's per-op profile:\n" + format_profile(checks["profile"]))
    return "\n".join(lines)


def _speed(r: dict) -> str:
    sp, ci = r.get("speedup"), r.get("speedup_ci")
    if not sp:
        return ""
    text = f", speedup {sp:.2f}x"
    if ci and None not in ci:
        text += f" (95% CI {ci[0]:.2f}-{ci[1]:.2f})"
    if r.get("ref_ms") and r.get("new_ms"):
        text += f", reference {r['ref_ms']:.3f} ms vs this {r['new_ms']:.3f} ms per call"
    return text


def _clip(text: str, limit: int = MAX_DETAIL) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit // 3] + "\n...\n" + text[-2 * limit // 3:]


def compiler_output(checks: dict) -> str:
    nvcc = checks.get("nvcc") if isinstance(checks.get("nvcc"), dict) else {}
    return str(nvcc.get("compiler_output") or checks.get("compiler_output") or checks.get("error_detail") or "")


def _compiler_errors(checks: dict, reason: str, code: str) -> list[str]:
    """The first few compiler errors, each with the line of the solution it points at: from
    the excerpt the compiler prints when there is one, else from the C/C++ string in the
    solution that the build compiled."""
    text = compiler_output(checks) or reason
    m = re.search(r"syntax error line (\d+)", reason)
    if m and code:
        return [f"line {m.group(1)} of your solution: {_line(code, int(m.group(1)))}"]
    lines = text.splitlines()
    out = []
    for i, line in enumerate(lines):
        hit = COMPILER_LINE.search(line.strip())
        if not hit:
            continue
        excerpt = next((ex.group(2) for ex in map(EXCERPT.match, lines[i + 1:i + 3]) if ex), None)
        n = _solution_line(code, hit.group("file"), int(hit.group("line") or hit.group("line2")), excerpt)
        where = f" (line {n} of your solution: {_line(code, n)})" if n else ""
        out.append(f"  {hit.group(0)[len(hit.group('file')):].lstrip(':')}{where}")
        if len(out) == MAX_ERRORS:
            break
    if out:
        return ["compiler errors (first ones; line numbers are in the compiled source):", *out]
    return ["compiler output:", _clip(text)] if text and text != reason else []


def _line(code: str, n: int) -> str:
    lines = code.splitlines()
    return lines[n - 1].strip() if 0 < n <= len(lines) else "?"


def _solution_line(code: str, file: str, line: int, excerpt: str | None) -> int | None:
    if not code:
        return None
    if excerpt and excerpt.strip():
        hits = [i for i, x in enumerate(code.splitlines(), 1) if x.strip() == excerpt.strip()]
        return hits[0] if len(hits) == 1 else None
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):  # a model's code: anything
        return None
    name = file.rsplit("/", 1)[-1]
    cuda = name.endswith(".cu")
    sources = [n for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
               and "\n" in n.value and re.search(r"#include|extern|__global__|\{", n.value)
               and ("__global__" in n.value) == cuda]
    k = line - PREFIX_LINES.get(name, 0)
    fits = [n for n in sources if 0 < k <= n.value.count("\n") + 1]
    return fits[0].lineno + k - 1 if len(fits) == 1 else None


def _mismatch(m: dict) -> list[str]:
    where = [f"{k} {m[k]}" for k in ("trial", "shapes", "dist", "call") if m.get(k) not in (None, "", [])]
    out = [f"wrong output ({', '.join(where) or 'trial ?'}): max abs error {_num(m.get('max_abs_err'))}, "
           f"max rel error {_num(m.get('max_rel_err'))}"]
    samples = m.get("samples") or []
    if samples:
        out.append("  first mismatches (flat index: expected vs got): " +
                   "; ".join(f"[{s[0]}]: {_num(s[1])} vs {_num(s[2])}" for s in samples[:5] if len(s) >= 3))
    return out


def _num(x) -> str:
    return f"{x:.6g}" if isinstance(x, (int, float)) else str(x)


def format_profile(rows: list[dict], top: int = 8, min_share: float = 0.005) -> str:
    """`rows`: [{"op", "ms", "share", "calls"}], hottest first; ops under `min_share` are left out."""
    rows = [r for r in rows if r.get("share", 1) >= min_share] or rows[:1]
    return "\n".join(f"  {r['op']:<36} {100 * r.get('share', 0):5.1f}%  {r.get('ms', 0):.3f} ms"
                     f"  x{r.get('calls', 1)}" for r in rows[:top])
