"""GRPO recipes from the RL literature, one small module per family, each a pure function (or a
small state holder) that the trainer calls at one named dispatch point:

- `baselines`: ReMax (greedy-completion baseline), GDPO (per-component group normalisation);
- `selection`: which prompts get rollouts and how many (GDRO weights + square-root allocation,
  VADE Thompson sampling, DOTS difficulty targeting with rollout replay);
- `downsample`: D^3S (samples with the widest advantage spread, tokens with the largest
  |advantage| x entropy);
- `partial`: APRIL partial rollouts (over-provision, carry unfinished ones) and pruning of
  rollouts that can no longer pass;
- `hints`: POPE/ADHint-style privileged hints for prompts that nothing solves yet;
- `off_policy`: VCPO-style importance-ratio truncation and ESS step scaling;
- `flawed`: FAPO-style penalty for rewarded-but-flawed completions.

Nothing here imports torch at import time; the few tensor functions use tensor methods only.
"""
