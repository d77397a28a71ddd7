"""The cost ledger's prices: litellm's price table when installed, else zero (and the
report says the cost is unknown rather than inventing one)."""
from __future__ import annotations

import functools


@functools.lru_cache(maxsize=1)
def _table() -> dict:
    try:
        import litellm

        return dict(litellm.model_cost)
    except Exception:  # noqa: BLE001 - litellm is optional and heavy
        return {}


def price_of(model: str, tokens_in: int, tokens_out: int) -> float:
    entry = _table().get(model) or _table().get(model.split("/")[-1])
    if not entry:
        return 0.0
    return tokens_in * float(entry.get("input_cost_per_token") or 0) + \
        tokens_out * float(entry.get("output_cost_per_token") or 0)
