"""How a target kind names options that do not fit it: as the command line spells them."""
from __future__ import annotations

from collections.abc import Iterable


def as_flags(names: Iterable[str]) -> str:
    """'--bench-metric, --focus' for the option names bench_metric and focus."""
    return ", ".join("--" + k.replace("_", "-") for k in names)
