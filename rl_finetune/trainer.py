"""GRPO on a local transformers causal LM (architecture §8), read top to bottom:

    pick prompts -> share the step's rollouts among them -> sample groups -> score them
    -> advantages per group -> one clipped-surrogate update (optionally several)

The variants (advantage baselines, rollout budgets, loss aggregation) are pure functions
named by `GRPOConfig` and looked up in their modules' registries; this file only wires them.
The recipes from the literature (rl_finetune/recipes: ReMax, GDPO, GDRO, VADE, DOTS, D^3S,
APRIL, hints, VCPO, FAPO) act at the `self.recipes` calls of a step (recipe_hooks.py).
torch, transformers and peft are imported when a trainer is built, never at import time.
"""
from __future__ import annotations

import copy
import json
import random
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from kopt.rl_finetune.budget import PassRates
from kopt.rl_finetune.config import GRPOConfig
from kopt.rl_finetune.losses import grpo_loss
from kopt.rl_finetune.progress import MetricsCSV, plot_metrics
from kopt.rl_finetune.recipe_hooks import RecipeHooks
from kopt.rl_finetune.rollouts import encode_prompt, token_logprobs
from kopt.rl_finetune.runtime import Runtime

RewardFn = Callable[[list, list[str]], Sequence[float]]
CHECKPOINTS = "checkpoints"


class GRPOTrainer:
    """`GRPOTrainer(model, reward_fn, prompts, config, tokenizer).train()` -> one metrics dict per step.

    model: a transformers causal LM or a path/hub id to load one from; tokenizer: defaults to the model's.
    prompts: strings, or chats (lists of {"role", "content"}) rendered with the tokenizer's chat template.
    reward_fn(prompts, completions) -> one float per completion (prompts repeated once per completion, as given).
    callbacks: called with each logged metrics dict (every `config.log_every` steps and the last).
    hint_source (config.hints): an object with best_answer(prompt) -> a known good answer or None;
    doomed (config.partial_rollouts, optional): doomed(prompt, text so far) -> True when it can no longer pass.
    reward_fn may also return a dict of named parts per completion (summed, or normalised apart by 'gdpo'),
    with an optional "flawed" flag (config.flawed_penalty)."""

    def __init__(self, model, reward_fn: RewardFn, prompts: Sequence, config: GRPOConfig | None = None,
                 tokenizer=None, callbacks: Sequence[Callable[[dict], None]] = (), device: str | None = None,
                 hint_source=None, doomed: Callable[[object, str], bool] | None = None):
        self.cfg = config or GRPOConfig()
        self.reward_fn, self.callbacks = reward_fn, list(callbacks)
        self.prompts = list(prompts)
        if not self.prompts:
            raise ValueError("GRPOTrainer needs at least one prompt")
        self.runtime = rt = Runtime(device)
        torch = self.torch = rt.torch
        torch.manual_seed(self.cfg.seed + rt.rank)
        model, self.tokenizer = _load(model, tokenizer)
        self.eos_ids = _eos_ids(model, self.tokenizer)
        if self.cfg.lora is not None:
            model = _with_lora(model, self.cfg.lora)
        self.ref_model = None
        if self.cfg.beta > 0 and self.cfg.lora is None:
            self.ref_model = copy.deepcopy(model).to(rt.device).eval().requires_grad_(False)
        self.params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(self.params, lr=self.cfg.lr, weight_decay=self.cfg.weight_decay, foreach=True)
        self.model, self.optimizer = rt.prepare(model, optimizer)
        self.prompt_ids = [encode_prompt(self.tokenizer, p) for p in self.prompts]
        self.step = 0
        self.order_rng = random.Random(self.cfg.seed)
        self.order: list[int] = []
        self.pass_rates = PassRates()
        self.recipes = RecipeHooks(self.cfg, hint_source=hint_source, doomed=doomed)
        self.history: list[dict] = []
        self.out = Path(self.cfg.output_dir)

    # -- the loop ----------------------------------------------------------------------------------------------
    def train(self, resume: bool | str | Path = False) -> list[dict]:
        """Train to `max_steps`; with resume=True continue from the latest checkpoint in output_dir (or a path)."""
        if resume:
            self._resume(resume)
        csv = MetricsCSV(self.out / "metrics.csv", truncate_after=self.step) if self.runtime.is_main else None
        try:
            while self.step < self.cfg.max_steps:
                metrics = self.train_step()
                if csv:
                    csv.write(metrics)
                last = self.step == self.cfg.max_steps
                if self.step % self.cfg.log_every == 0 or last:
                    for cb in self.callbacks:
                        cb(metrics)
                if self.cfg.save_every and (self.step % self.cfg.save_every == 0 or last):
                    self.save_checkpoint()  # the last one too: training can go on later with more steps
        finally:
            if csv:
                csv.close()
        self.save(self.out)
        if self.runtime.is_main:
            plot_metrics(self.out / "metrics.csv", self.out / "training.png")
        return self.history

    def train_step(self) -> dict:
        """One GRPO step: sample, score, advantages, update. Returns the step's metrics. The recipes switched on
        in the config act at the `self.recipes` calls (rl_finetune/recipe_hooks.py); with none on, this is
        plain GRPO."""
        cfg, torch, rt, recipes = self.cfg, self.torch, self.runtime, self.recipes
        t0 = time.perf_counter()
        chosen = recipes.choose_prompts(self)
        counts = self._allocate(chosen)
        self.model.eval()  # and it stays so: dropout would make the scored policy differ from the sampled one
        batch = recipes.collect(self, chosen, counts)  # sampled, resumed (partial) and replayed groups
        roll = batch.roll
        t_gen = time.perf_counter()
        rewards = recipes.score(self, batch)
        t_rew = time.perf_counter()

        groups = _split(rewards, batch.counts)
        prior = [self.pass_rates.estimate(i) for i in batch.prompts]
        for i, g in zip(batch.prompts, groups):
            self.pass_rates.update(i, sum(r > cfg.pass_threshold for r in g), len(g))
        adv = recipes.advantages(self, batch, groups)
        adv_values = torch.tensor([v for a in adv for v in a.values], dtype=torch.float32, device=rt.device)
        keep = torch.tensor([k for a in adv for k in a.keep], dtype=torch.float32, device=rt.device)
        # a batch without any advantage teaches nothing: skip its forward/backward (all processes must join in)
        signal = (bool((adv_values.abs() > 0).any()) or cfg.beta > 0 or rt.world > 1) and len(roll) > 0
        update = {}
        if signal:
            mask, step_adv, scale = recipes.loss_inputs(self, batch, adv_values, batch.train_mask * keep.unsqueeze(-1))
            update = self._update(roll, step_adv, mask, scale)
        recipes.after_step(self, batch, groups, prior)
        t_upd = time.perf_counter()

        self.step += 1
        r = torch.tensor(rewards or [float("nan")])
        metrics = {
            "reward": float(r.mean()), "reward_std": float(r.std()) if len(r) > 1 else 0.0,
            "reward_max": float(r.max()), "pass_rate": float((r > cfg.pass_threshold).float().mean()),
            "kl": update.get("kl", float("nan")), "entropy": update.get("entropy", float("nan")),
            "loss": update.get("loss", 0.0), "clip_frac": update.get("clip_frac", 0.0),
            "zero_adv_frac": float((adv_values == 0).float().mean()) if len(adv_values) else 1.0,
            "prompts": len(batch.prompts), "completions": len(roll),
            "completion_tokens": float(roll.completion_mask.sum()), "rollouts": batch.fresh,
            "generated_tokens": batch.generated_tokens, **batch.metrics(),
            "gen_s": t_gen - t0, "reward_s": t_rew - t_gen, "update_s": t_upd - t_rew, "step_s": t_upd - t0,
        }
        metrics = {"step": self.step, **rt.mean(metrics)}
        metrics["completions_per_s"] = metrics["completions"] * rt.world / max(metrics["step_s"], 1e-9)
        self.history.append(metrics)
        return metrics

    def _allocate(self, chosen: list[int]) -> list[int]:
        """Completions per chosen prompt, by the configured budget rule."""
        cfg = self.cfg
        min_each = max(cfg.min_group, 3 if cfg.advantage == "median" else 2)
        return self.recipes.allocate(self, chosen, len(chosen) * cfg.samples_per_prompt, min_each,
                                     cfg.max_group or 4 * cfg.samples_per_prompt)

    def _update(self, roll, advantages, mask, scale: float = 1.0) -> dict:
        """`updates_per_step` clipped-surrogate steps on one batch of rollouts, each accumulated over micro-batches
        weighted so the sum is the whole batch's loss, times `scale` (a recipe's step size); reports the first
        update's entropy/KL. `advantages` is one value per completion or, from a recipe, per token."""
        cfg, torch, rt = self.cfg, self.torch, self.runtime
        chunks = _chunks(len(roll), cfg.micro_batch_size)
        need_ref = cfg.beta > 0 or cfg.lora is not None
        ref = [self._reference_logprobs(roll.rows(c)) if need_ref else None for c in chunks]
        old = [None] * len(chunks)  # with one update, pi_old is pi itself (ratio 1, detached)
        if cfg.updates_per_step > 1:
            with torch.no_grad():
                old = [token_logprobs(self.model, roll.rows(c), cfg.temperature)[0] for c in chunks]
        tokens = mask.sum().clamp(min=1)
        all_tokens = roll.completion_mask.sum().clamp(min=1)
        out = {}
        for k in range(cfg.updates_per_step):
            totals = {"loss": 0.0, "clip_frac": 0.0, "kl": 0.0, "entropy": 0.0}
            for j, c in enumerate(chunks):
                part, m = roll.rows(c), mask[c]
                logp, ent = token_logprobs(self.model, part, cfg.temperature, with_entropy=k == 0)
                loss, stats = grpo_loss(logp, logp.detach() if old[j] is None else old[j], advantages[c], m,
                                        cfg.clip_eps, cfg.beta, ref[j], cfg.loss_agg)
                rt.backward(loss * _share(m, mask, cfg.loss_agg) * scale)
                share = float(m.sum() / tokens)
                totals["loss"] += float(loss.detach()) * float(_share(m, mask, cfg.loss_agg))
                totals["clip_frac"] += stats["clip_frac"] * share
                totals["kl"] += stats.get("kl", float("nan")) * share
                if ent is not None:
                    totals["entropy"] += float((ent * part.completion_mask).sum() / all_tokens)
            rt.clip_grad(self.params, cfg.max_grad_norm)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            out = {**totals, **({"kl": out["kl"], "entropy": out["entropy"]} if k else {})}
        return out

    # -- pieces ------------------------------------------------------------------------------------------------
    def _next_prompts(self) -> list[int]:
        """This process's share of the step's prompts, drawn without replacement from seeded shuffles."""
        rt, want = self.runtime, self.cfg.prompts_per_step * self.runtime.world
        chosen = []
        while len(chosen) < want:
            if not self.order:
                self.order = list(range(len(self.prompts)))
                self.order_rng.shuffle(self.order)
            chosen.append(self.order.pop())
        return chosen[rt.rank::rt.world]

    def _reference_logprobs(self, roll):
        torch = self.torch
        with torch.no_grad():
            if self.ref_model is not None:
                return token_logprobs(self.ref_model, roll, self.cfg.temperature)[0]
            with self.runtime.unwrap(self.model).disable_adapter():
                return token_logprobs(self.model, roll, self.cfg.temperature)[0]

    # -- saving and resuming -----------------------------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        """The model (or LoRA adapter) and tokenizer, loadable by `--model hf:FOLDER`."""
        folder = Path(folder)
        self.runtime.wait()
        if self.runtime.is_main:
            folder.mkdir(parents=True, exist_ok=True)
            self.runtime.unwrap(self.model).save_pretrained(folder)
            self.tokenizer.save_pretrained(folder)
            (folder / "grpo_config.json").write_text(json.dumps(self.cfg.to_dict(), indent=2, default=str))
        return folder

    def save_checkpoint(self) -> Path:
        folder = self.out / CHECKPOINTS / f"step-{self.step:06d}"
        self.save(folder)
        if self.runtime.is_main:
            torch = self.torch
            torch.save(self.optimizer.state_dict(), folder / "optimizer.pt")
            state = {"step": self.step, "order": self.order, "order_rng": _rng_state(self.order_rng),
                     "pass_rates": self.pass_rates.to_dict(), "recipes": self.recipes.state(), "history": self.history}
            torch.save(torch.get_rng_state(), folder / "rng.pt")
            (folder / "trainer_state.json").write_text(json.dumps(state))
            done = sorted((self.out / CHECKPOINTS).glob("step-*"))
            for old in done[:-max(1, self.cfg.keep_checkpoints)]:
                shutil.rmtree(old, ignore_errors=True)
        return folder

    def _resume(self, resume: bool | str | Path) -> None:
        folder = Path(resume) if isinstance(resume, (str, Path)) else latest_checkpoint(self.out)
        if folder is None:
            return
        torch = self.torch
        model = self.runtime.unwrap(self.model)
        if self.cfg.lora is not None:
            import peft

            peft.set_peft_model_state_dict(model, peft.utils.load_peft_weights(str(folder)))
        else:
            loaded = type(model).from_pretrained(folder)
            model.load_state_dict(loaded.state_dict())
        self.optimizer.load_state_dict(torch.load(folder / "optimizer.pt", weights_only=False))
        torch.set_rng_state(torch.load(folder / "rng.pt"))
        state = json.loads((folder / "trainer_state.json").read_text())
        self.step, self.order, self.history = state["step"], state["order"], state["history"]
        self.order_rng.setstate(_rng_from(state["order_rng"]))
        self.pass_rates = PassRates.from_dict(state["pass_rates"])
        self.recipes.load_state(state.get("recipes", {}))


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest complete checkpoint under output_dir (one whose trainer_state.json was written)."""
    done = sorted(p.parent for p in (Path(output_dir) / CHECKPOINTS).glob("step-*/trainer_state.json"))
    return done[-1] if done else None


def _chunks(n: int, size: int) -> list[slice]:
    """Row slices of at most `size` (all rows at once when size is 0)."""
    size = size if size > 0 else max(n, 1)
    return [slice(i, min(n, i + size)) for i in range(0, n, size)]


def _share(part_mask, mask, agg: str) -> float:
    """The weight of a micro-batch's mean in the whole batch's: its share of the tokens (token-mean) or of the
    completions that have any (sequence)."""
    if agg == "token-mean":
        return float(part_mask.sum() / mask.sum().clamp(min=1))
    has = (mask.sum(-1) > 0).float()
    return float((part_mask.sum(-1) > 0).float().sum() / has.sum().clamp(min=1))


def _split(values: list[float], sizes: list[int]) -> list[list[float]]:
    out, start = [], 0
    for n in sizes:
        out.append(values[start:start + n])
        start += n
    return out


def _rng_state(rng: random.Random) -> list:
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]


def _rng_from(state: list) -> tuple:
    return state[0], tuple(state[1]), state[2]


def _load(model, tokenizer):
    import transformers

    if isinstance(model, (str, Path)):
        src = str(Path(model).expanduser().resolve()) if Path(model).expanduser().exists() else str(model)
        model = transformers.AutoModelForCausalLM.from_pretrained(src, dtype="float32")
        tokenizer = tokenizer or transformers.AutoTokenizer.from_pretrained(src)
    elif tokenizer is None:
        name = getattr(model.config, "_name_or_path", "")
        if not name:
            raise ValueError("pass tokenizer= with a model object that was not loaded from a path")
        tokenizer = transformers.AutoTokenizer.from_pretrained(name)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
        if tokenizer.pad_token_id is None:
            raise ValueError("the tokenizer has no pad, eos or unk token to pad a batch with")
    return model, tokenizer


def _eos_ids(model, tokenizer) -> set[int]:
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids = set(eos if isinstance(eos, list) else [eos]) | {tokenizer.eos_token_id}
    ids.discard(None)
    return ids  # empty: every completion runs to max_new_tokens


def _with_lora(model, lora):
    import peft

    if isinstance(lora, dict):
        lora = peft.LoraConfig(task_type="CAUSAL_LM", **lora)
    return peft.get_peft_model(model, lora)
