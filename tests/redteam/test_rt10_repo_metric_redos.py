"""rt10: a candidate's bench output makes kopt's own metric regex run for minutes (no timeout).

Attack: a repository bench that prints `result: ...` and `elapsed: 12.3 ms`, measured with
`--bench-metric "([0-9.]+) ms"` (a natural regex; no literal before the group). The patch
leaves the answer right and prints one line of 100 000 digits from the hot function. kopt
reads every bench output with `re.finditer(pattern)` (shell_commands.parse_metric) and
`re.sub(pattern)` (normalised) in its own process: at each start position `[0-9.]+` eats the
rest of the digit run and gives it back one by one looking for " ms" -- quadratic, ~1 minute
per call at 100 000 digits, several calls per run (the output is cut to 256 kB: two runs of
128 kB digits take longer still), before any output check can fail the candidate.
Before: `RepoTarget.evaluate` did not return within 60 s (the honest evaluation takes ~10 s);
one evaluation holds kopt's process for many minutes, bounded by no timeout (architecture §4:
nothing a candidate sends can stall kopt).
Root cause: the user's pattern runs unbounded over candidate-controlled text in kopt's
process; the bench's own timeout covers the bench, not kopt's parsing of what it printed.
Fix: match the metric only on lines of bounded length (e.g. split lines, skip lines longer
than 4 kB, or cap each line before matching), or run the regex with a time budget (the
`regex` module's `timeout=`, or in a child process) and treat an overrun as `rejected`.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support.small_repo import make_repo

FILES = {
    "lib.py": "def work(n):\n    total = 0\n    for i in range(n):\n        total += (i * i) % 7\n    return total\n",
    "runner.py": "import lib\n\n\ndef main(n):\n    return lib.work(n)\n",
    "bench.py": ("import time\n\nimport runner\n\nt = time.perf_counter()\nprint(\"result:\", runner.main(300_000))\n"
                 "print(f\"elapsed: {(time.perf_counter() - t) * 1000:.1f} ms\")\n"),
    "test_lib.py": "import lib\n\nassert lib.work(10) == sum((i * i) % 7 for i in range(10))\n",
}
PATCH = """diff --git a/lib.py b/lib.py
--- a/lib.py
+++ b/lib.py
@@ -1,4 +1,5 @@
 def work(n):
+    print("7" * 100_000)
     total = 0
     for i in range(n):
         total += (i * i) % 7
"""
DRIVER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from kopt.agent.targets.repo.repo_target import RepoTarget
    repo, patch = Path(sys.argv[1]), Path(sys.argv[2])
    t = RepoTarget.from_options(repo, test='python3 -c "import test_lib"', bench="python3 bench.py",
                                bench_metric="([0-9.]+) ms")
    r = t.evaluate(patch, [])
    print("VERDICT", r["verdict"], r.get("reason"))
""")


def test_metric_regex_on_candidate_output_is_bounded(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", FILES)
    patch = tmp_path / "digits.patch"
    patch.write_text(PATCH)
    try:
        run = subprocess.run([sys.executable, "-c", DRIVER, str(repo), str(patch)], capture_output=True, text=True,
                             timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("RepoTarget.evaluate still parsing the candidate's output after 60 s")
    assert "VERDICT" in run.stdout, run.stderr[-600:]
