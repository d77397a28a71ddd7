"""What the model is told about one evaluation of its code: what a kernel engineer would read
before the next attempt.

The evaluator's structured fields are used when present (`checks.mismatch`,
`checks.error_detail`, compiler output) and the one-line `reason` otherwise. Program and
repository targets get only the verdict, the speedup and the reason: their details may hold
the hidden tests' inputs and outputs.
"""
from __future__ import annotations

import re

COMPILER_LINE = re.compile(r"^(?P<file>[^\s:]+):(?P<line>\d+):(?:(?P<col>\d+):)? *(?:fatal )?error\b.*$", re.M)
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


def describe(result: dict | None, code: str = "", kind: str = "kernelbench") -> str:
    """A few lines about one evaluation result, for the next prompt."""
    if not result:
        return "not evaluated yet"
    verdict = result.get("verdict") or "unknown"
    lines = [f"verdict: {verdict}" + _speed(result)]
    reason = (result.get("reason") or "").strip()
    if reason:
        lines.append(f"reason: {reason}")
    if kind != "kernelbench":
        return "\n".join(lines)
    checks = result.get("checks") or {}
    if verdict == "compile_error":
        lines += _compiler_errors(checks, reason, code)
    elif verdict == "incorrect" and isinstance(checks.get("mismatch"), dict):
        lines += _mismatch(checks["mismatch"])
    elif verdict == "runtime_error" and checks.get("error_detail"):
        lines += ["error (the solution's frames):", _clip(str(checks["error_detail"]))]
    elif verdict == "rejected":
        rule = next((why for key, why in RULES if key in reason), None)
        if rule:
            lines.append(f"rule: {rule}")
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
    """The first few compiler errors, each with the line of the solution it points at when
    the excerpt the compiler prints can be found in the solution's text."""
    text = compiler_output(checks) or reason
    m = re.search(r"syntax error line (\d+)", reason)
    if m and code:
        return [f"line {m.group(1)} of your solution: {_line(code, int(m.group(1)))}"]
    lines = text.splitlines()
    out = []
    for i, line in enumerate(lines):
        hit = COMPILER_LINE.match(line.strip())
        if not hit:
            continue
        where = ""
        for follow in lines[i + 1:i + 3]:
            ex = EXCERPT.match(follow)
            if ex and code:
                n = _find_line(code, ex.group(2))
                where = f" (line {n} of your solution: {ex.group(2).strip()})" if n else f" ({ex.group(2).strip()})"
                break
        message = line.strip()[len(hit.group("file")) + 1:]
        out.append(f"  {message}{where}")
        if len(out) == MAX_ERRORS:
            break
    if out:
        return ["compiler errors (first ones; line:col are in the compiled source):", *out]
    return ["compiler output:", _clip(text)] if text and text != reason else []


def _line(code: str, n: int) -> str:
    lines = code.splitlines()
    return lines[n - 1].strip() if 0 < n <= len(lines) else "?"


def _find_line(code: str, excerpt: str) -> int | None:
    want = excerpt.strip()
    hits = [i for i, line in enumerate(code.splitlines(), 1) if want and line.strip() == want]
    return hits[0] if len(hits) == 1 else None


def _mismatch(m: dict) -> list[str]:
    out = [f"wrong on trial {m.get('trial', '?')}: shapes {m.get('shapes', '?')}, inputs {m.get('dist', '?')}; "
           f"max abs error {_num(m.get('max_abs_err'))}, max rel error {_num(m.get('max_rel_err'))}"]
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
