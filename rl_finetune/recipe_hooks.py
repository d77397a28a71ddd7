"""Where GRPOTrainer calls the recipes of `rl_finetune/recipes`: one object, one method per
dispatch point of a step, so the trainer's loop reads the same whichever recipes are on:

    choose_prompts -> allocate -> collect (sample / hint / resume partial rollouts / replay)
    -> score (reward parts, flawed penalty) -> advantages (baseline, GDPO, D^3S samples)
    -> loss_inputs (D^3S tokens, VCPO weights and step scale) -> after_step (GDRO, replay)

The recipes themselves are pure functions; this module holds their state between steps and the
torch plumbing (building a batch from token lists, the APRIL stopping rule).
"""
from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from kopt.rl_finetune.advantages import Advantages, batch_advantages
from kopt.rl_finetune.budget import BUDGETS
from kopt.rl_finetune.recipes.baselines import component_dicts_to_groups, gdpo_advantages, remax_advantages
from kopt.rl_finetune.recipes.components import RewardParts, split_rewards
from kopt.rl_finetune.recipes.downsample import d3s_keep_fraction, d3s_sample_keep, d3s_token_mask
from kopt.rl_finetune.recipes.flawed import penalise_flawed
from kopt.rl_finetune.recipes.hints import hint_fraction, hint_prefix
from kopt.rl_finetune.recipes.off_policy import ess_step_scale, truncated_importance_weights
from kopt.rl_finetune.recipes.partial import Partial, PartialGroup, PartialRollouts, prune_doomed
from kopt.rl_finetune.recipes.selection import (
    GDROWeights,
    ReplayBuffer,
    difficulty_bin,
    dots_select,
    sqrt_allocation,
    vade_select,
    weighted_sample,
)
from kopt.rl_finetune.rollouts import Rollouts, left_pad, sample, token_logprobs


@dataclass
class Batch:
    """The groups one update trains on. Rows are completions, grouped by `counts`."""

    prompts: list[int]  # prompt index of each group
    counts: list[int]
    completions: list[list[int]]  # token ids of each completion (forced hint tokens first)
    forced: list[int]  # how many leading tokens of each completion the policy was given (not trained on)
    behaviour: list[list[float] | None]  # the sampler's log-probs of a stale row's sampled tokens; None: fresh
    known: list[object | None]  # a replayed row's reward output (not scored again); None: to be scored
    fresh: int = 0  # completions sampled this step (the rollouts spent, greedy ones included)
    generated_tokens: int = 0
    pruned: int = 0
    greedy_rewards: list[float] | None = None
    roll: object = None  # rollouts.Rollouts over the rows
    train_mask: object = None  # [B, T]: the sampled completion tokens
    parts: RewardParts | None = None
    extras: dict = field(default_factory=dict)

    @property
    def row_prompts(self) -> list[int]:
        return [p for p, n in zip(self.prompts, self.counts) for _ in range(n)]

    def metrics(self) -> dict[str, float]:
        """What the recipes did this step, for the step's metrics (0 when a recipe is off)."""
        flawed = self.parts.flawed if self.parts else []
        return {"hinted_groups": float(self.extras.get("hinted_groups", 0)),
                "replayed_groups": float(self.extras.get("replayed_groups", 0)),
                "carried_groups": float(self.extras.get("carried_groups", 0)), "pruned": float(self.pruned),
                "flawed_frac": sum(flawed) / len(flawed) if flawed else 0.0,
                "ess_scale": float(self.extras.get("ess_scale", 1.0))}


class RecipeHooks:
    """The recipes' state and dispatch points for one trainer. `cfg.hint_source` (hints=True; a `hint_source`
    given here overrides it) knows good answers; `doomed(prompt, text) -> bool` (optional, with
    partial_rollouts) says a prefix can no longer pass."""

    def __init__(self, cfg, hint_source=None, doomed: Callable[[object, str], bool] | None = None):
        self.cfg = cfg
        self.rng = random.Random(cfg.seed + 1)
        self.gdro = GDROWeights() if "gdro" in (cfg.prompt_sampling, cfg.budget) else None
        self.replay = ReplayBuffer(capacity=4 * cfg.prompts_per_step) if cfg.prompt_sampling == "dots" else None
        self.partial = PartialRollouts(cfg.over_provision) if cfg.partial_rollouts else None
        self.hint_source, self.doomed = hint_source or cfg.hint_source, doomed
        self._hint_ids: dict[int, list[int]] = {}
        self._replayed: list = []

    # -- which prompts, how many rollouts ------------------------------------------------------------------------
    def choose_prompts(self, trainer) -> list[int]:
        """This process's fresh prompts for the step (fewer when replayed groups fill part of the batch, more
        when partial rollouts over-provision)."""
        cfg, rt = self.cfg, trainer.runtime
        want = cfg.prompts_per_step
        if self.partial is not None:
            want = self.partial.groups_to_start(cfg.prompts_per_step)
        self._replayed = []
        if self.replay is not None:
            self._replayed = self.replay.take(trainer.step, int(want * cfg.replay_fraction))
            want -= len(self._replayed)
        if want <= 0:
            return []
        if cfg.prompt_sampling == "uniform":
            chosen: list[int] = []
            while len(chosen) < want:
                chosen += trainer._next_prompts()
            return chosen[:want]
        n = len(trainer.prompts)
        k = min(n, want * rt.world)
        if cfg.prompt_sampling == "vade":
            picked = vade_select([trainer.pass_rates.counts.get(i, (0.0, 0.0)) for i in range(n)], k, self.rng)
        else:
            ps = [trainer.pass_rates.estimate(i) for i in range(n)]
            if cfg.prompt_sampling == "gdro":
                picked = weighted_sample(self.gdro.prompt_weights(ps), k, self.rng)
            else:
                picked = dots_select(ps, k, self.rng)
        return picked[rt.rank::rt.world]

    def allocate(self, trainer, chosen: Sequence[int], total: int, min_each: int, max_each: int) -> list[int]:
        ps = [trainer.pass_rates.estimate(i) for i in chosen]
        if self.cfg.budget == "gdro":
            bw = self.gdro.bin_weights()
            weights = [bw[difficulty_bin(p, self.gdro.bins)] * self.gdro.bins for p in ps]
            return sqrt_allocation(ps, total, min_each=min_each, max_each=max_each, weights=weights)
        return BUDGETS[self.cfg.budget](ps, total, min_each=min_each, max_each=max_each)

    # -- rollouts ------------------------------------------------------------------------------------------------
    def collect(self, trainer, chosen: Sequence[int], counts: Sequence[int]) -> Batch:
        """Sample (or resume) the step's groups and return the batch to train on, replayed groups appended."""
        if self.partial is not None:
            batch = self._partial_batch(trainer, chosen, counts)
        else:
            batch = self._fresh_batch(trainer, chosen, counts)
        for r in self._replayed:
            p = r.payload
            batch.prompts.append(r.prompt)
            batch.counts.append(len(p["completions"]))
            batch.completions += p["completions"]
            batch.forced += p["forced"]
            batch.behaviour += p["behaviour"]
            batch.known += p["raw"]
        batch.extras["replayed_groups"] = len(self._replayed)
        if self.cfg.advantage == "remax" and batch.prompts:
            batch.greedy_rewards = self._greedy_rewards(trainer, batch)
            batch.fresh += len(batch.prompts)
        batch.roll, batch.train_mask = build_rollouts(trainer, batch)
        return batch

    def _hint(self, trainer, prompt: int) -> list[int]:
        if not self.cfg.hints:
            return []
        if prompt not in self._hint_ids:
            answer = self.hint_source.best_answer(trainer.prompts[prompt])
            self._hint_ids[prompt] = (trainer.tokenizer(answer, add_special_tokens=False).input_ids
                                      if answer else [])
        frac = hint_fraction(trainer.pass_rates.estimate(prompt), trainer.step, self.cfg.max_steps)
        return list(hint_prefix(self._hint_ids[prompt], frac))[:max(0, self.cfg.max_new_tokens - 1)]

    def _fresh_batch(self, trainer, chosen, counts) -> Batch:
        cfg, rt = self.cfg, trainer.runtime
        hints = [self._hint(trainer, i) for i in chosen]
        batch = Batch(list(chosen), list(counts), [], [], [], [])
        if not chosen:
            return batch
        inputs = [trainer.prompt_ids[i] + h for i, h in zip(chosen, hints)]  # a hint continues the prompt
        roll = sample(rt.unwrap(trainer.model), trainer.tokenizer, inputs, counts, max_new_tokens=cfg.max_new_tokens,
                      temperature=cfg.temperature, top_p=cfg.top_p, eos_ids=trainer.eos_ids, device=rt.device)
        ids = roll.input_ids[:, roll.prompt_width:].tolist()
        lengths = roll.completion_mask.sum(-1).long().tolist()
        for row, g in enumerate(roll.prompt_index):
            h = hints[g]
            batch.completions.append(h + ids[row][:lengths[row]])
            batch.forced.append(len(h))
        batch.behaviour = [None] * len(batch.completions)
        batch.known = [None] * len(batch.completions)
        batch.fresh = len(batch.completions)
        batch.generated_tokens = int(sum(lengths))
        batch.extras["hinted_groups"] = sum(1 for h in hints if h)
        return batch

    def _partial_batch(self, trainer, chosen, counts) -> Batch:
        cfg, step = self.cfg, trainer.step
        new = []
        for i, n in zip(chosen, counts):
            h = self._hint(trainer, i)
            new.append(PartialGroup(i, step, [Partial(i, step, list(h), forced=len(h)) for _ in range(n)]))
        groups = self.partial.carried + new
        live = [r for g in groups for r in g.rollouts if not r.finished]
        before = [len(r.tokens) for r in live]
        generated = extend_partials(trainer, groups, live, cfg.prompts_per_step, self.doomed) if live else 0
        if cfg.off_policy == "vcpo" and live:
            record_sampler_logprobs(trainer, live, before)
        pruned = 0
        if self.doomed is not None:
            pruned = prune_doomed(live, trainer.prompts, self.doomed,
                                  decode=lambda t: trainer.tokenizer.decode(t, skip_special_tokens=True))
        done = self.partial.settle(groups, cfg.prompts_per_step)
        batch = Batch([g.prompt for g in done], [len(g.rollouts) for g in done], [], [], [], [],
                      fresh=sum(counts), generated_tokens=generated, pruned=pruned)
        for g in done:
            for r in g.rollouts:
                batch.completions.append(r.tokens)
                batch.forced.append(r.forced)
                batch.behaviour.append(r.logp if (r.born < step and cfg.off_policy) else None)
                batch.known.append(None)
        batch.extras["carried_groups"] = len(self.partial.carried)
        batch.extras["hinted_groups"] = sum(1 for g in new if g.rollouts and g.rollouts[0].forced)
        return batch

    def _greedy_rewards(self, trainer, batch: Batch) -> list[float]:
        """ReMax's baseline: the reward of each group's greedy completion (hint included, as its samples)."""
        import torch

        rt = trainer.runtime
        inputs = []
        for g, p in enumerate(batch.prompts):
            first = sum(batch.counts[:g])
            inputs.append(trainer.prompt_ids[p] + batch.completions[first][:batch.forced[first]])
        ids, mask = left_pad(inputs, trainer.tokenizer.pad_token_id, rt.device)
        with torch.inference_mode():
            out = rt.unwrap(trainer.model).generate(input_ids=ids, attention_mask=mask, do_sample=False,
                                                    max_new_tokens=self.cfg.max_new_tokens,
                                                    pad_token_id=trainer.tokenizer.pad_token_id,
                                                    eos_token_id=sorted(trainer.eos_ids))
        texts = []
        for g, row in enumerate(out[:, ids.shape[1]:].tolist()):
            toks = _until_eos(row, trainer.eos_ids)
            first = sum(batch.counts[:g])
            texts.append(trainer.tokenizer.decode(batch.completions[first][:batch.forced[first]] + toks,
                                                  skip_special_tokens=True))
        raw = trainer.reward_fn([trainer.prompts[p] for p in batch.prompts], texts)
        return self._penalised(split_rewards(list(raw)))

    # -- rewards and advantages ------------------------------------------------------------------------------------
    def score(self, trainer, batch: Batch) -> list[float]:
        """One scalar reward per row: fresh rows scored by the reward function (against the original prompt),
        replayed rows as they were; reward dicts summed; flagged passes penalised (FAPO)."""
        rows = batch.row_prompts
        todo = [j for j, k in enumerate(batch.known) if k is None]
        raw = list(batch.known)
        if todo:
            texts = batch.roll.texts
            got = list(trainer.reward_fn([trainer.prompts[rows[j]] for j in todo], [texts[j] for j in todo]))
            if len(got) != len(todo):
                raise ValueError(f"reward_fn returned {len(got)} rewards for {len(todo)} completions")
            for j, r in zip(todo, got):
                raw[j] = r
        batch.extras["raw"] = raw
        batch.parts = split_rewards(raw)
        return self._penalised(batch.parts)

    def _penalised(self, parts: RewardParts) -> list[float]:
        if not self.cfg.flawed_penalty:
            return parts.totals
        return penalise_flawed(parts.totals, parts.flawed, self.cfg.flawed_penalty, self.cfg.pass_threshold)

    def advantages(self, trainer, batch: Batch, groups: list[list[float]]) -> list[Advantages]:
        cfg = self.cfg
        if cfg.reward_norm == "gdpo":
            comps = batch.parts.components or [{"reward": r} for r in batch.parts.totals]
            adv = gdpo_advantages(component_dicts_to_groups(comps, batch.counts))
        elif cfg.advantage == "remax":
            adv = [remax_advantages(g, b) for g, b in zip(groups, batch.greedy_rewards)]
        else:
            adv = batch_advantages(groups, cfg.advantage)
        if cfg.downsample == "d3s":
            frac = d3s_keep_fraction(trainer.step, cfg.max_steps, start=cfg.d3s_keep)
            keeps = d3s_sample_keep([a.values for a in adv], frac, min_keep=2)
            adv = [Advantages(a.values, [k and d for k, d in zip(a.keep, kp)]) for a, kp in zip(adv, keeps)]
        return adv

    # -- the loss ----------------------------------------------------------------------------------------------
    def loss_inputs(self, trainer, batch: Batch, adv_values, mask):
        """(mask, advantages [B] or [B, T], step scale) for the update: D^3S token selection, then VCPO's
        truncated importance weights on stale rows and the ESS step scale. Runs one no-grad forward of the
        policy when one of those is on (or when DOTS+VCPO must remember what fresh rows were sampled under)."""
        cfg = self.cfg
        tokens = cfg.downsample == "d3s" and cfg.d3s_token_keep < 1
        stale = cfg.off_policy == "vcpo" and any(b is not None for b in batch.behaviour)
        remember = cfg.off_policy == "vcpo" and self.replay is not None
        if not (tokens or stale or remember) or not len(batch.roll):
            return mask, adv_values, 1.0
        logp, entropy = policy_logprobs(trainer, batch.roll, with_entropy=tokens)
        batch.extras["logp"] = logp
        if tokens:
            mask = d3s_token_mask(adv_values, entropy, mask, cfg.d3s_token_keep)
        if not stale:
            return mask, adv_values, 1.0
        behaviour = logp.clone()
        for row, (b, f) in enumerate(zip(batch.behaviour, batch.forced)):
            if b is not None:
                n = min(len(b), behaviour.shape[1] - f)
                behaviour[row, f:f + n] = behaviour.new_tensor(b[:n])
        w = truncated_importance_weights(logp, behaviour, mask, cap=cfg.is_cap)
        seq = truncated_importance_weights(logp, behaviour, mask, cap=cfg.is_cap, per_sequence=True)
        scale = ess_step_scale(seq.tolist())
        batch.extras["ess_scale"] = scale
        return mask, adv_values.unsqueeze(-1) * w, scale

    # -- after the update --------------------------------------------------------------------------------------
    def after_step(self, trainer, batch: Batch, groups: list[list[float]], prior: list[float]) -> None:
        """Fold the step into the recipes' state: GDRO's bin losses, DOTS's replay buffer (fresh informative
        groups, with the log-probs they were sampled under when VCPO needs them)."""
        passed = [sum(r > self.cfg.pass_threshold for r in g) / max(1, len(g)) for g in groups]
        if self.gdro is not None:
            self.gdro.update(prior, passed)
        if self.replay is None:
            return
        start = 0
        lp = batch.extras["logp"].tolist() if "logp" in batch.extras else None
        for p, n, g in zip(batch.prompts, batch.counts, groups):
            rows = range(start, start + n)
            start += n
            if any(batch.known[j] is not None for j in rows):
                continue  # a replayed group is not replayed again
            behaviour = [lp[j][batch.forced[j]:len(batch.completions[j])] if lp else None for j in rows]
            self.replay.add(trainer.step, p, {"completions": [batch.completions[j] for j in rows],
                                              "forced": [batch.forced[j] for j in rows], "behaviour": behaviour,
                                              "raw": [batch.extras["raw"][j] for j in rows]}, g)

    def state(self) -> dict:
        return {"gdro": self.gdro.to_dict() if self.gdro else None}

    def load_state(self, state: dict) -> None:
        if state.get("gdro") and self.gdro is not None:
            self.gdro = GDROWeights.from_dict(state["gdro"])


def policy_logprobs(trainer, roll, with_entropy: bool = False):
    """Detached log-probs (and entropies) of every completion token under the current policy, in micro-batches."""
    import torch

    size = trainer.cfg.micro_batch_size or len(roll)
    logps, ents = [], []
    with torch.no_grad():
        for i in range(0, len(roll), size):
            lp, ent = token_logprobs(trainer.model, roll.rows(slice(i, i + size)), trainer.cfg.temperature,
                                     with_entropy=with_entropy)
            logps.append(lp.detach())
            ents.append(ent)
    return torch.cat(logps), (torch.cat(ents) if with_entropy else None)


def _until_eos(row: list[int], eos_ids: set[int]) -> list[int]:
    for i, t in enumerate(row):
        if t in eos_ids:
            return row[:i + 1]
    return row


def build_rollouts(trainer, batch: Batch):
    """A `Rollouts` over the batch's rows (left-padded prompt, right-padded completion) and the mask of the
    tokens that are trained on (sampled tokens: forced hint tokens are context, not actions)."""
    import torch

    rt, tok = trainer.runtime, trainer.tokenizer
    rows = batch.row_prompts
    prompt_ids, prompt_mask = left_pad([trainer.prompt_ids[p] for p in rows] or [[tok.pad_token_id]],
                                       tok.pad_token_id, rt.device)
    width = max([len(c) for c in batch.completions] + [1])
    comp = torch.full((len(rows), width), tok.pad_token_id, dtype=torch.long)
    cmask = torch.zeros((len(rows), width))
    train = torch.zeros((len(rows), width))
    for j, c in enumerate(batch.completions):
        if c:
            comp[j, :len(c)] = torch.tensor(c, dtype=torch.long)
            cmask[j, :len(c)] = 1.0
            train[j, batch.forced[j]:len(c)] = 1.0
    comp, cmask, train = comp.to(rt.device), cmask.to(rt.device), train.to(rt.device)
    texts = [tok.decode(c, skip_special_tokens=True) for c in batch.completions]
    roll = Rollouts(rows, torch.cat([prompt_ids[:len(rows)], comp], 1),
                    torch.cat([prompt_mask[:len(rows)], cmask.long()], 1), cmask, prompt_ids.shape[1], texts)
    return roll, train


DOOMED_EVERY = 16  # past this many new tokens, prefixes are checked every this many (a decode per row per check)


def record_sampler_logprobs(trainer, live: Sequence[Partial], before: Sequence[int]) -> None:
    """Append to each rollout the current policy's log-probs of the tokens it just generated (what VCPO compares
    against when the rollout is trained on in a later step). One no-grad forward over the live rows."""
    rows = Batch([r.prompt for r in live], [1] * len(live), [r.tokens for r in live], [0] * len(live),
                 [None] * len(live), [None] * len(live))
    roll, _ = build_rollouts(trainer, rows)
    logp, _ = policy_logprobs(trainer, roll)
    for j, (r, start) in enumerate(zip(live, before)):
        first = max(start, r.forced)
        r.logp += logp[j, first:len(r.tokens)].tolist()


def extend_partials(trainer, groups: Sequence[PartialGroup], live: Sequence[Partial], target: int,
                    doomed: Callable | None = None) -> int:
    """APRIL: continue every live rollout in one batched `generate`, stopping all of them as soon as `target`
    groups are complete (a rollout is complete at its end token, at the length limit, or when `doomed`).
    Appends the new tokens to each rollout; returns the tokens generated."""
    import torch
    import transformers

    cfg, rt, tok = trainer.cfg, trainer.runtime, trainer.tokenizer
    eos = sorted(trainer.eos_ids)
    ids, mask = left_pad([trainer.prompt_ids[r.prompt] + r.tokens for r in live], tok.pad_token_id, rt.device)
    width = ids.shape[1]
    room = torch.tensor([cfg.max_new_tokens - len(r.tokens) for r in live], device=rt.device)
    row_of = {id(r): j for j, r in enumerate(live)}
    group_rows = [[row_of.get(id(r)) for r in g.rollouts] for g in groups]

    def complete_rows(new) -> list[bool]:
        ended = torch.zeros(len(live), dtype=torch.bool, device=new.device)
        for e in eos:
            ended |= (new == e).any(-1)
        ended |= room <= new.shape[1]
        out = ended.tolist()
        if doomed is not None and (new.shape[1] < DOOMED_EVERY or new.shape[1] % DOOMED_EVERY == 0):
            for j, r in enumerate(live):
                if not out[j]:
                    out[j] = doomed(trainer.prompts[r.prompt], tok.decode(r.tokens + new[j].tolist(),
                                                                          skip_special_tokens=True))
        return out

    class EnoughGroups(transformers.StoppingCriteria):
        def __call__(self, input_ids, scores, **kw):
            done_rows = complete_rows(input_ids[:, width:])
            done = sum(all(j is None or done_rows[j] for j in rows) for rows in group_rows)
            return torch.full((input_ids.shape[0],), done >= target, dtype=torch.bool, device=input_ids.device)

    with torch.inference_mode():
        out = rt.unwrap(trainer.model).generate(
            input_ids=ids, attention_mask=mask, do_sample=True, temperature=cfg.temperature, top_p=cfg.top_p,
            top_k=0, max_new_tokens=int(room.max()), pad_token_id=tok.pad_token_id, eos_token_id=eos,
            stopping_criteria=transformers.StoppingCriteriaList([EnoughGroups()]), use_cache=True)
    new = out[:, width:]
    generated = 0
    for j, r in enumerate(live):
        toks = _until_eos(new[j].tolist()[:int(room[j])], trainer.eos_ids)
        r.tokens += toks
        generated += len(toks)
        r.finished = bool(toks and toks[-1] in trainer.eos_ids) or len(r.tokens) >= cfg.max_new_tokens
    return generated
