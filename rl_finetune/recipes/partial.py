"""Long, uneven generations: APRIL-style partial rollouts and online pruning.

In a synchronous step every rollout waits for the longest one. APRIL (active partial rollouts)
over-provisions: it starts more groups than a step needs, stops generating as soon as enough
groups have finished, and carries the unfinished ones (with the tokens generated so far) into
the next step, where they resume instead of starting over. Nothing is thrown away; the oldest
finished groups are trained on first, so a carried rollout's staleness stays bounded (and an
off-policy correction, see `off_policy`, can account for it).

Online pruning stops a rollout as soon as its prefix can no longer pass (a prefix that already
breaks the answer format, code that can no longer compile): it is finished as it stands, so it
costs no more generation, and the reward function scores the failing prefix as it would have
scored the failing whole.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


@dataclass
class Partial:
    """One rollout in flight: which prompt, the completion tokens so far, the step it was started."""

    prompt: int
    born: int
    tokens: list[int] = field(default_factory=list)
    finished: bool = False
    forced: int = 0  # leading tokens given to the policy (a hint), not sampled by it
    logp: list[float] = field(default_factory=list)  # the sampler's log-probabilities of the sampled tokens
    pruned: bool = False


@dataclass
class PartialGroup:
    """The G rollouts of one prompt; GRPO needs all of them to compare, so a group is the unit of a batch."""

    prompt: int
    born: int
    rollouts: list[Partial]

    @property
    def finished(self) -> bool:
        return all(r.finished for r in self.rollouts)


@dataclass
class PartialRollouts:
    """APRIL bookkeeping between steps: what to start, what to train on, what to carry over."""

    over_provision: float = 1.5
    carried: list[PartialGroup] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.over_provision < 1:
            raise ValueError("over_provision must be at least 1 (it starts that many times the groups a step needs)")

    def groups_to_start(self, target: int) -> int:
        """New groups to start so that ceil(target x over_provision) are in flight."""
        return max(0, math.ceil(target * self.over_provision) - len(self.carried))

    def settle(self, groups: Sequence[PartialGroup], target: int) -> list[PartialGroup]:
        """Of the groups in flight after generating, the (at most `target`) finished ones to train on now,
        oldest first; every other group, finished or not, is carried to the next step."""
        done = sorted((g for g in groups if g.finished), key=lambda g: g.born)
        batch = done[:target]
        taken = {id(g) for g in batch}
        self.carried = [g for g in groups if id(g) not in taken]
        return batch


def prune_doomed(rollouts: Sequence[Partial], prompts: Sequence, doomed: Callable[[object, object], bool],
                 decode: Callable[[list[int]], object] = list) -> int:
    """Finish every unfinished rollout whose prefix `doomed(prompt, decode(tokens))` says can no longer pass.
    Returns how many were pruned."""
    pruned = 0
    for r in rollouts:
        if not r.finished and r.tokens and doomed(prompts[r.prompt], decode(r.tokens)):
            r.finished = r.pruned = True
            pruned += 1
    return pruned
