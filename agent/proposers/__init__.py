"""Proposers turn what the search knows into new candidates: the LLM proposer
(`llm_proposer.py`) with its prompt pieces (`prompting/`) and chat backends (`backends/`), and the
built-in `rules` proposers (`rules/`). `factory.make_proposer` picks one for `--model`."""
