"""A `--config` file for end-to-end `kopt optimize` runs whose assertions are about the run
(the store, --resume, reports, exit codes), not about how well a speedup is measured.

Token fingerprints for novelty: the default loads the embedding model, ~10 s of CPU in
every `kopt optimize` process (its own tests are in tests/search/test_pure.py). Fewer
correctness trials, timed rounds and quality seeds than the defaults: each still runs, so
a broken stage still fails the run.
"""
from __future__ import annotations

from pathlib import Path

FAST_TOML = """[search]
novelty = "tokens"
[eval]
trials = 2
rounds = 3
max_timing_s = 2.0
quality_seeds = 2
"""


def fast_config(folder: Path) -> Path:
    """Writes FAST_TOML to `folder`/fast.toml and returns its path."""
    path = Path(folder) / "fast.toml"
    path.write_text(FAST_TOML)
    return path
