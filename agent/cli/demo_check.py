"""`make demo`'s last line: what the demo run verified, set against the figure the README
promises, so a first-time user sees at once whether their machine agrees (and why it may not).

Usage: python -m kopt.agent.cli.demo_check RUN_DIR README.md
"""
from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

CLAIM = re.compile(r"<!--\s*demo-claim:\s*([0-9.]+)\s*-->")


def readme_claim(readme: Path) -> float | None:
    """The speedup the README states for `make demo` (its `<!-- demo-claim: X -->` marker)."""
    m = CLAIM.search(readme.read_text()) if readme.exists() else None
    return float(m.group(1)) if m else None


def verdict_line(run_dir: Path, claim: float | None) -> tuple[str, int]:
    summary_file = run_dir / "summary.json"
    if not summary_file.exists():
        return f"make demo: no run summary in {run_dir} (the run did not finish)", 1
    summary = json.loads(summary_file.read_text())
    best = summary.get("best_speedup")
    if not best:
        return (f"make demo: nothing verified faster in {summary['evaluations']} evaluations "
                f"(failures: {summary.get('failures') or 'none'})"), 1
    evals = json.loads((run_dir / "best" / "evaluations.json").read_text()) if (run_dir / "best").exists() else []
    ci = next((e.get("speedup_ci") for e in reversed(evals) if e.get("speedup_ci")), None)
    ci_text = f"; the last one's 95% CI {ci[0]:.2f}-{ci[1]:.2f}" if ci else ""
    faster = sum(e.get("verdict") == "faster" for e in evals)
    what = ("verified faster" if faster else "correct, but not verified faster (the CI reaches below the "
                                             "noise floor)")
    line = (f"make demo: {best:.2f}x, {what}: median of the best candidate's {len(evals) or '?'} evaluation(s), "
            f"{faster} of them 'faster'{ci_text}; {summary['evaluations']} evaluations in all")
    if claim is None:
        return line + "; the README states no figure to compare with", 0
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    busy = f"; load average {load:.1f} on {os.cpu_count()} cores" if load is not None else ""
    ratio = best / claim
    where = ("as the README says" if 0.8 <= ratio <= 1.25 else
             "below the README's figure (a busier or slower machine measures less)" if ratio < 0.8 else
             "above the README's figure")
    return f"{line}; README: about {claim:g}x on a 2-core CPU under load -> {where}{busy}", 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m kopt.agent.cli.demo_check RUN_DIR README.md", file=sys.stderr)
        return 2
    line, code = verdict_line(Path(argv[0]), readme_claim(Path(argv[1])))
    print(line)
    return code


if __name__ == "__main__":
    sys.exit(main())
