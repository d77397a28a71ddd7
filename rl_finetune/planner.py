"""Training a planner (issue 21 item 3): prompts are KernelBench tasks rendered as
`planning.prompt.plan_prompt`, completions are plans, rewards are kopt's (architecture §8)
for the candidate the plan makes, measured by the sandboxed evaluator through the
evaluation cache (so a plan -- or another plan that makes the same code -- is measured
once per decision, not once per rollout).

A plan whose steps are all no-ops makes no candidate and scores `RewardConfig.failed`.
"""
from __future__ import annotations

import hashlib
import random
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from kopt.agent.errors import UserInputError
from kopt.agent.proposers.planning.plans import PlanStep, final_code, heuristic_plan, render_plan, run_plan
from kopt.agent.proposers.planning.prompt import plan_from_completion, plan_prompt
from kopt.agent.proposers.rules.registry import rule_ids
from kopt.agent.targets.kernelbench.fit import FitConfig, fit_task
from kopt.rl_finetune.plan_tokenizer import plan_only, subword_tokenizer
from kopt.rl_finetune.rewards import RewardConfig, reward
from kopt.rl_finetune.toy import tiny_llama
from kopt.sandboxes.eval_cache import CachedEvaluator, EvalCache, Need
from kopt.sandboxes.evaluator import EvalConfig, evaluate
from kopt.sandboxes.kernelbench_tasks import load_task, suite_tasks


@dataclass(frozen=True)
class PlanTask:
    name: str
    path: Path  # the task file evaluated (a fitted copy when fitted)
    source: str

    @property
    def prompt(self) -> str:
        return plan_prompt(self.source)

    @property
    def chat(self) -> str:
        """What the trainer is given (a plain string: the planner prompt is not a chat)."""
        return self.prompt

    @classmethod
    def from_path(cls, path: Path, name: str | None = None) -> PlanTask:
        path = Path(path)
        return cls(name or path.stem, path, path.read_text())


@dataclass
class Outcome:
    plan: str
    steps: list[dict]
    reward: float
    verdict: str | None = None
    speedup: float | None = None
    code_sha: str | None = None

    @property
    def win(self) -> bool:
        return self.verdict == "faster"


class PlanReward:
    """`reward_fn(prompts, completions)` for GRPOTrainer: each completion's plan is run on its
    prompt's task and the candidate is evaluated through the cache with `Need.reward`."""

    def __init__(self, tasks: list[PlanTask], eval_cfg: EvalConfig, workdir: Path, cache: EvalCache | None = None,
                 need: Need | None = None, reward_cfg: RewardConfig = RewardConfig(), evaluate_fn=evaluate,
                 jobs: int = 1, plan_filter=None):
        self.by_prompt = {t.prompt: t for t in tasks}
        self.eval_cfg, self.reward_cfg, self.jobs = eval_cfg, reward_cfg, max(1, jobs)
        self.plan_filter = plan_filter or (lambda steps: steps)  # e.g. a study's bounded plan space
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.cached = CachedEvaluator(cache or EvalCache(), evaluate_fn, need=need or Need.reward(eval_cfg.noise_floor))
        self.memo: dict[tuple[str, str], Outcome] = {}
        self.verdicts: Counter = Counter()
        self._lock = threading.Lock()

    def outcome(self, task: PlanTask, steps: list[PlanStep]) -> Outcome:
        results = run_plan(task.source, steps)
        code = final_code(results)
        records = [r.record() for r in results]
        if code is None:
            return Outcome(render_plan(steps), records, self.reward_cfg.failed, "no-op")
        sha = hashlib.sha256(code.encode()).hexdigest()[:20]
        key = (task.name, sha)
        with self._lock:
            known = self.memo.get(key)
        if known is None:
            solution = self.workdir / task.name / f"{sha}.py"
            solution.parent.mkdir(parents=True, exist_ok=True)
            solution.write_text(code)
            res = self.cached(task.path, solution, self.eval_cfg)
            self.verdicts[res.get("verdict") or "unknown"] += 1
            r = reward(res, self.reward_cfg)
            known = Outcome("", [], self.reward_cfg.failed if r is None else r, res.get("verdict"),
                            res.get("speedup") if res.get("correct") else None, sha)
            with self._lock:
                self.memo[key] = known
        return Outcome(render_plan(steps), records, known.reward, known.verdict, known.speedup, sha)

    @property
    def evaluations(self) -> int:
        """Evaluations really run (the rest were served by the cache)."""
        return self.cached.measured

    def __call__(self, prompts, completions) -> list[float]:
        """Rewards of a batch; distinct candidates are evaluated `jobs` at a time (each in its own sandbox)."""
        work = [(self.by_prompt[p if isinstance(p, str) else p[-1]["content"]],
                 self.plan_filter(plan_from_completion(c)))
                for p, c in zip(prompts, completions)]
        if self.jobs == 1:
            return [self.outcome(t, steps).reward for t, steps in work]
        with ThreadPoolExecutor(self.jobs, thread_name_prefix="kopt-plan-eval") as pool:
            return [o.reward for o in pool.map(lambda w: self.outcome(*w), work)]


def planner_tasks(suite: Path, level: int | None, out_dir: Path, fit: bool = True) -> list[PlanTask]:
    """The task files of a suite as planner tasks, fitted to this machine (copies under OUT/fit/)."""
    tasks = []
    for path in suite_tasks(suite, level):
        try:
            load_task(path)
        except UserInputError:
            continue  # not a task file (a helper next to the tasks)
        name = f"{path.parent.name}_{path.stem}"
        if fit:
            res = fit_task(path, out_dir / "fit" / name, FitConfig())
            if res.skipped:
                continue  # cannot run here (too big, needs a GPU): no reward could be measured
            path = Path(res.path)
        tasks.append(PlanTask.from_path(path, name))
    return tasks


def planner_tokenizer(tasks: list[PlanTask]):
    """The small planner's tokenizer: rule ids whole, operators as sub-word pieces learned from
    these tasks, so an operator they never use still reads as known pieces (plan_tokenizer.py)."""
    return subword_tokenizer([t.source for t in tasks])


def planner_model(tokenizer, hidden: int = 128, layers: int = 2, seed: int = 0, plan_tokens_only: bool = True):
    """A randomly initialised Llama built from a config (hidden 128, 2 layers: ~0.4M parameters);
    by default it writes only plan tokens (rule ids, ';', end), set in its generation config."""
    model = tiny_llama(tokenizer, hidden, layers, max_positions=128, seed=seed)
    if plan_tokens_only:
        plan_only(model, tokenizer)
    return model


def distinct_prefix(max_steps: int):
    """A plan filter: the first `max_steps` distinct rules of a plan (a study's plan space)."""
    def keep(steps: list[PlanStep]) -> list[PlanStep]:
        out: list[PlanStep] = []
        for s in steps:
            if s.rule not in {o.rule for o in out}:
                out.append(s)
        return out[:max_steps]

    return keep


def plan_text(steps: list[PlanStep]) -> str:
    """A plan as a completion: steps separated by ' ; ' (what the planner is trained to write)."""
    return " ; ".join(s.render() for s in steps)


def imitate_heuristic(model, tokenizer, tasks: list[PlanTask], steps: int, lr: float = 1e-3, seed: int = 0,
                      augment: int = 8) -> None:
    """A warm start before GRPO: STEPS of cross-entropy on (prompt -> the rules' heuristic
    plan) over TASKS, 8 a step. The prompt lists the rules that apply in registry order and the
    heuristic takes the first, so the policy learns to copy it and GRPO starts from the
    heuristic instead of rediscovering it. AUGMENT more prompts per task list other rules
    (a random subset, registry order) with the first of them as the answer: a few dozen tasks
    show few rule lists, and without them the policy wrote rules its prompt did not list on a
    quarter of the held-out tasks (closed_loop, 34-task split)."""
    import torch  # heavy optional dependency ([train])

    if not tasks or steps <= 0:
        return
    rng = random.Random(seed)
    pairs = [(t.prompt, plan_text(heuristic_plan(t.source))) for t in tasks]
    rules = rule_ids()
    for t in tasks:
        for _ in range(augment):
            listed = sorted(rng.sample(rules, rng.randint(1, min(4, len(rules)))), key=rules.index)
            pairs.append((plan_prompt(t.source, rules=listed), plan_text([PlanStep(listed[0])])))
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        batch = rng.sample(pairs, min(8, len(pairs)))
        loss = 0.0
        for prompt, completion in batch:
            p_ids, c_ids = tokenizer(prompt).input_ids, tokenizer(completion).input_ids + [tokenizer.eos_token_id]
            ids = torch.tensor([p_ids + c_ids], device=model.device)
            labels = torch.tensor([[-100] * len(p_ids) + c_ids], device=model.device)
            loss = loss + model(input_ids=ids, labels=labels).loss
        (loss / len(batch)).backward()
        opt.step()
        opt.zero_grad()


def plan_logprobs(model, tokenizer, prompt: str, plans: list[list[PlanStep]]) -> list[float]:
    """log p(plan + end | prompt) under the model (its raw distribution), for ranking a plan space;
    the plans are scored in one batch (right-padded after the shared prompt)."""
    import torch  # heavy optional dependency ([train])

    model.eval()
    p_ids = tokenizer(prompt).input_ids
    completions = [tokenizer(plan_text(steps)).input_ids + [tokenizer.eos_token_id] for steps in plans]
    if not completions:
        return []
    width = max(map(len, completions))
    ids = torch.full((len(plans), len(p_ids) + width), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, c in enumerate(completions):
        ids[i, :len(p_ids) + len(c)] = torch.tensor(p_ids + c)
        mask[i, :len(p_ids) + len(c)] = 1
    with torch.no_grad():
        logits = model(input_ids=ids.to(model.device), attention_mask=mask.to(model.device)).logits.float().cpu()
    logp = torch.log_softmax(logits[:, len(p_ids) - 1:-1], -1)
    tok_lp = logp.gather(-1, ids[:, len(p_ids):, None])[..., 0] * mask[:, len(p_ids):]
    return [float(v) for v in tok_lp.sum(-1)]


def greedy_plan(model, tokenizer, prompt: str, max_new_tokens: int = 8) -> list[PlanStep]:
    """The planner's top-1 plan: its greedy completion, read as a plan."""
    import torch  # heavy optional dependency ([train])

    model.eval()
    ids = torch.tensor([tokenizer(prompt).input_ids], device=model.device)
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                             max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                             eos_token_id=tokenizer.eos_token_id)
    return plan_from_completion(tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True))
