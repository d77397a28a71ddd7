"""The search job: the loop that proposes, evaluates and keeps the best (`loop.py`), the
`kopt optimize` job around it (`optimize.py`, `optimize_config.py`), novelty filter, summarizer."""
