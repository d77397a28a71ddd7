"""The cost ledger's prices: litellm's price table when installed, else zero (and the
report says the cost is unknown rather than inventing one)."""
from __future__ import annotations

import functools
import importlib.util
import json
from pathlib import Path

from kopt.agent.proposers.backends.litellm_chat import import_litellm

SHIPPED_TABLE = "model_prices_and_context_window_backup.json"


@functools.lru_cache(maxsize=1)
def _table() -> dict:
    """The price table litellm ships, read as JSON: importing litellm itself takes seconds."""
    try:
        spec = importlib.util.find_spec("litellm")
        if spec and spec.submodule_search_locations:
            for folder in spec.submodule_search_locations:
                shipped = Path(folder) / SHIPPED_TABLE
                if shipped.exists():
                    return json.loads(shipped.read_text())

        return dict(import_litellm().model_cost)
    except Exception:  # noqa: BLE001 - litellm is optional and heavy
        return {}


def price_of(model: str, tokens_in: int, tokens_out: int) -> float:
    """Exact model names only: a local server's model that shares a hosted model's last
    name component is not charged the hosted price."""
    entry = _table().get(model)
    if not entry:
        return 0.0
    return tokens_in * float(entry.get("input_cost_per_token") or 0) + \
        tokens_out * float(entry.get("output_cost_per_token") or 0)
