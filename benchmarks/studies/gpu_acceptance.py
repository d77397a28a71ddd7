"""GPU first light: one run that says whether kopt's GPU paths work on this machine.

    python benchmarks/studies/gpu_acceptance.py [--kernelbench DIR] [--work DIR] [--dry-run]

Prints one table, a row per check (PASS / FAIL / SKIP and the figure): the environment and
`kopt doctor`, `pytest -m gpu`, honest copies of 10 upstream KernelBench tasks, kopt's own
fused kernels (CUDA load_inline, CuPy, Triton), five GPU cheats, timing sanity, `kopt
optimize` against a scripted LLM on loopback and `kopt bench` with eager and
torch.compile baselines (docs/gpu.md). Designed to finish within 8 minutes on one
H100/H200: upstream sizes, short timing budgets, a time cap per group of checks and one
for the whole run. `--dry-run` needs no GPU: it compiles every CUDA kernel with nvcc,
drives the scripted server and builds the table with SKIP for the rows that need a GPU.
Exit code 0 when no row failed.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # run as `python benchmarks/studies/X.py`: siblings and tests/ import from the checkout
    sys.path.insert(0, str(REPO))
from benchmarks.studies.gpu_checks import GROUPS, Ctx, one_line  # noqa: E402

DEFAULT_KERNELBENCH = Path(__file__).resolve().parents[3] / "shared" / "kernelbench"
TOTAL_S = 470  # the whole run; 8 minutes less the table and start-up
DRY_RUN_SLACK = 3  # a dry run's caps are this many times longer: they guard a GPU's time, not a CPU's


class Group:
    """One group of checks in its own process: started, then collected under its time cap."""

    def __init__(self, name: str, cap_s: float, args: argparse.Namespace):
        self.name, self.cap_s = name, cap_s
        self.out = args.work / f"rows-{name}.jsonl"
        self.out.unlink(missing_ok=True)
        cmd = [sys.executable, str(Path(__file__).resolve()), "--group", name, "--rows", str(self.out),
               "--kernelbench", str(args.kernelbench), "--work", str(args.work / name)]
        self.t0, self.wall0 = time.perf_counter(), time.time()
        self.proc = subprocess.Popen(cmd + (["--dry-run"] if args.dry_run else []), stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, start_new_session=True)

    def rows(self) -> list[tuple[str, str, str]]:
        """The group's rows; a crash or the cap becomes a FAIL row, the rows made before it stay."""
        try:
            log, _ = self.proc.communicate(timeout=max(0.1, self.cap_s - (time.perf_counter() - self.t0)))
            problem = None if self.proc.returncode == 0 else \
                f"group process exited {self.proc.returncode}: {one_line(log or '')[-200:]}"
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.communicate()
            problem = f"time cap of {self.cap_s:.0f} s reached; later checks of the group did not run"
        rows = [tuple(json.loads(line)) for line in self.out.read_text().splitlines()] if self.out.exists() else []
        if problem:
            rows.append((f"{self.name}: (unfinished)", "FAIL", problem))
        last = self.out.stat().st_mtime if self.out.exists() and not problem else time.time()
        took = f"  [{last - self.wall0:.0f} s]"  # until its last row: groups of a dry run overlap
        return [(c, st, f + took if i == len(rows) - 1 else f) for i, (c, st, f) in enumerate(rows)]


def run_group(name: str, cap_s: float, args: argparse.Namespace) -> list[tuple[str, str, str]]:
    return Group(name, cap_s, args).rows()


def table(rows: list[tuple[str, str, str]], title: str) -> str:
    width = max(len(r[0]) for r in rows)
    lines = [title, f"{'check':<{width}}  result  figure", "-" * (width + 40)]
    lines += [f"{c:<{width}}  {s:<6}  {f}" for c, s, f in rows]
    counts = {s: sum(r[1] == s for r in rows) for s in ("PASS", "FAIL", "SKIP")}
    lines.append(f"{counts['PASS']} passed, {counts['FAIL']} failed, {counts['SKIP']} skipped")
    return "\n".join(lines)


def _child(args: argparse.Namespace) -> int:
    """Run one group, appending each row to --rows as it is made."""
    ctx = Ctx(dry=args.dry_run, kernelbench=args.kernelbench, work=args.work)
    gen = dict((n, g) for n, _, g in GROUPS)[args.group]
    with open(args.rows, "a") as f:
        try:
            for row in gen(ctx):
                f.write(json.dumps([row[0], row[1], one_line(row[2])]) + "\n")
                f.flush()
        except Exception as e:  # noqa: BLE001 - a row saying what broke, and the other groups go on
            f.write(json.dumps([f"{args.group}: (error)", "FAIL", one_line(f"{type(e).__name__}: {e}")[:300]]) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python benchmarks/studies/gpu_acceptance.py", description=__doc__.split("\n")[0])
    ap.add_argument("--kernelbench", type=Path, default=Path(os.environ.get("KOPT_KERNELBENCH", DEFAULT_KERNELBENCH)),
                    help="folder with level1..level3 of upstream KernelBench (default ../shared/kernelbench)")
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: a new temporary one)")
    ap.add_argument("--dry-run", action="store_true", help="everything that needs no GPU; GPU rows are SKIP")
    ap.add_argument("--only", default=None, help="comma-separated groups to run: " + ",".join(n for n, _, _ in GROUPS))
    ap.add_argument("--json", type=Path, default=None, help="also write the rows to this JSON file")
    ap.add_argument("--group", help=argparse.SUPPRESS)
    ap.add_argument("--rows", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.group:
        return _child(args)
    if not (args.kernelbench / "level1").is_dir():
        print(f"gpu_acceptance: no KernelBench tasks at {args.kernelbench} (want level1/ .. level3/); "
              f"pass --kernelbench DIR", file=sys.stderr)
        return 2
    names = [n for n, _, _ in GROUPS]
    only = args.only.split(",") if args.only else names
    if set(only) - set(names):
        print(f"gpu_acceptance: unknown group(s) {','.join(sorted(set(only) - set(names)))}; "
              f"choose from {','.join(names)}", file=sys.stderr)
        return 2
    args.kernelbench = args.kernelbench.resolve()
    args.work = (args.work or Path(tempfile.mkdtemp(prefix="kopt-gpu-accept-"))).resolve()
    args.work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    rows = []
    if args.dry_run:  # no GPU to share: every group at once, each under three times its cap
        groups = [Group(name, DRY_RUN_SLACK * cap, args) for name, cap, _ in GROUPS if name in only]
        rows = [row for g in groups for row in g.rows()]
    for name, cap, _ in GROUPS if not args.dry_run else []:
        if name not in only:
            continue
        left = TOTAL_S - (time.perf_counter() - started)
        if left < 10:
            rows.append((f"{name}: (not run)", "FAIL", f"the run's {TOTAL_S} s were used up"))
            continue
        rows += run_group(name, min(cap, left), args)
    took = time.perf_counter() - started
    mode = "dry run (no GPU rows)" if args.dry_run else "GPU run"
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(table(rows, f"kopt GPU acceptance, {mode}: {took:.0f} s, {when}"))
    if args.json:
        args.json.write_text(json.dumps({"seconds": round(took, 1), "dry_run": args.dry_run,
                                         "rows": [dict(zip(("check", "status", "figure"), r)) for r in rows]},
                                        indent=2))
    return 1 if any(r[1] == "FAIL" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
