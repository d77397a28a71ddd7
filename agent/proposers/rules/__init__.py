"""The built-in `rules` proposers (no LLM): KernelBench tasks, programs and repositories,
with the code generators only they use."""
