"""The POLCA-style search loop behind `kopt optimize` (architecture §5).

A candidate's priority is its estimated speed (`estimate.py`: its measurements shrunk toward
its parent's estimate); each iteration expands the top-k (one by default: going deep on the
best estimate finds truly faster candidates) into children through the proposer, filters
near-duplicates with the epsilon-net, and evaluates the children. The last evaluations of
the budget confirm the candidate the run would return (a second measurement, a third when
two disagree), so one lucky measurement cannot crown it, without spending the exploration
budget on re-measuring every promising candidate; an answer the evaluator already timed on
a fresh pair of workers, well clear of the noise floor, needs none. The answer is
the best *verified faster* candidate; with none, the reference stands. Every candidate and
evaluation is in the store the moment it exists, so a killed run resumes where it stopped.
"""
from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, Field

from kopt.agent.core import Candidate, Evaluation, Target
from kopt.agent.errors import KoptError
from kopt.agent.proposers.llm_proposer import ProposerUnavailable
from kopt.agent.runs.store import Store
from kopt.agent.search.estimate import OUTLIER_GAP, combine, log_speedups, shrunk, verified_faster
from kopt.agent.search.novelty import make_net
from kopt.agent.search.summarizer import summarize
from kopt.agent.targets.kernelbench.kernelbench_target import KernelBenchTarget, reference_solution  # noqa: F401 (re-export)
from kopt.rl_finetune.rewards import VERIFIED, reward
from kopt.sandboxes.evaluator import EvalConfig
from kopt.sandboxes.machine import fingerprint


def _failed(e: Exception, where: str) -> dict:
    """The result of a candidate whose evaluation raised: a verdict, so the search goes on."""
    return {"verdict": "runtime_error", "correct": False, "compiled": False, "speedup": None,
            "speedup_ci": None, "reason": f"{where}: {type(e).__name__}: {e}"[:300], "checks": {}}


class SearchConfig(BaseModel):
    budget: int = Field(12, ge=1, description="evaluations, re-evaluations included")
    max_time: float | None = Field(None, description="seconds of wall time")
    max_tokens: int | None = None
    max_cost: float | None = Field(None, description="dollars")
    top_k: int = Field(1, ge=1, description="candidates expanded per iteration: 1 goes deepest on the "
                       "best estimate (search_efficiency.py: with 2 the answer was truly slower)")
    max_evals_per_candidate: int = Field(3, ge=1, description="re-evaluations stop here")
    reevaluate_top: bool = Field(False, description="also re-evaluate the top-k every iteration (the older loop)")
    novelty: str = Field("auto", description="auto | tokens | embedding: the epsilon-net's distance")
    epsilon: float = Field(0.005, ge=0, description="novelty radius over token 5-gram Jaccard distance")
    epsilon_embedding: float = Field(0.0015, ge=0, description="novelty radius over embedding cosine distance")
    ucb_c: float = Field(0.0, ge=0, description="exploration bonus c*sqrt(ln N / n); 0 = pure mean")
    confirm_reserve: float = Field(0.05, ge=0, le=1, description="share of the evaluation budget (at least one "
                                   "evaluation unless 0) kept to confirm the best before the run ends")
    noise_sigma: float = Field(0.10, gt=0, description="spread of one candidate's log-speedup between evaluations")
    prior_spread: float = Field(0.25, gt=0, description="spread of a child's log-speedup around its parent's")
    outlier_gap: float = Field(OUTLIER_GAP, gt=0, description="two log-speedups further apart: one is an outlier")
    eval: EvalConfig = Field(default_factory=EvalConfig)


@dataclass
class Stats:
    evaluations: int = 0
    tokens: int = 0
    cost: float = 0.0
    elapsed: float = 0.0


class Search:
    """`target` is any `Target` (a KernelBench task path is wrapped as one). `evaluator`, when
    given, replaces the target's own evaluation (benchmarks plug in a simulator). `executor`
    (`kopt.sandboxes.executors`: local threads or Ray) evaluates the new children of a target
    with `parallel_eval` concurrently; each result is stored as it arrives."""

    def __init__(self, target: Target | Path | str, proposer, store: Store, run_id: str, run_dir: Path,
                 cfg: SearchConfig, on_event: Callable[[dict], None] | None = None,
                 evaluator: Callable[[Path, Path, EvalConfig], dict] | None = None, executor=None):
        if isinstance(target, (str, Path)):
            target = KernelBenchTarget.from_path(target, cfg.eval)
        self.target, self.task_path = target, Path(target.path)
        self.proposer, self.store, self.run_id = proposer, store, run_id
        self.run_dir, self.cfg = Path(run_dir), cfg
        # the store and every candidate's code stay out of the candidates' reach
        self.hidden = [str(self.run_dir.resolve())]
        if self.hidden[0] not in cfg.eval.hidden_paths:  # also for evaluators plugged in directly
            cfg.eval.hidden_paths.append(self.hidden[0])
        self.on_event = on_event or (lambda e: None)
        self.evaluator, self.executor = evaluator, executor
        self.task_source = target.source
        self.cands: dict[str, Candidate] = {c.id: c for c in store.candidates(run_id)}
        self.evals: dict[str, list[dict]] = {cid: [] for cid in self.cands}
        for e in store.evaluations(run_id):
            self.evals.setdefault(e.candidate_id, []).append(e.result)
        self.expanded: set[str] = set(store.get_meta("expanded", []))
        self.duplicates: dict[str, str] = store.get_meta("duplicates", {})
        self.net = make_net(cfg.novelty, cfg.epsilon, cfg.epsilon_embedding)
        for c in self.cands.values():
            if c.id not in self.duplicates:
                self.net.add(c.id, c.code)
        self.stats = Stats(evaluations=sum(len(v) for v in self.evals.values()),
                           tokens=sum(int(c.proposer.get("tokens_in", 0)) + int(c.proposer.get("tokens_out", 0))
                                      for c in self.cands.values()),
                           cost=sum(float(c.proposer.get("cost", 0.0)) for c in self.cands.values()),
                           elapsed=float(store.get_meta("elapsed", 0.0)))
        self.started = time.monotonic()
        self.stop_reason = ""
        self.iteration = 0

    # -- scoring --------------------------------------------------------------------------
    def estimate(self, cid: str) -> float:
        """The log-speedup this candidate is believed to have: its measurements shrunk toward
        its parent's estimate (the reference is 1x by definition)."""
        cand = self.cands[cid]
        if not cand.parent_ids:
            return 0.0
        parent = cand.parent_ids[0]
        prior = self.estimate(parent) if parent in self.cands else 0.0
        c = self.cfg
        return shrunk(log_speedups(self.evals.get(cid, [])), prior, c.noise_sigma, c.prior_spread, c.outlier_gap)

    def mean_score(self, cid: str) -> float:
        """The queue's key: for a verified candidate the reward of its estimated speed, else
        the mean reward of its evaluations (a failure ranks low)."""
        scores = [r for r in (reward(x) for x in self.evals.get(cid, [])) if r is not None]
        if not scores:
            return -1.0
        if self.verified(cid) and log_speedups(self.evals[cid]):
            scores = [reward({"verdict": "same", "correct": True, "speedup": math.exp(self.estimate(cid))})]
        bonus = 0.0
        if self.cfg.ucb_c:
            total = max(1, self.stats.evaluations)
            bonus = self.cfg.ucb_c * math.sqrt(math.log(total) / len(scores))
        return statistics.fmean(scores) + bonus

    def verified(self, cid: str) -> bool:
        results = self.evals.get(cid, [])
        return bool(results) and all(r.get("correct") and r.get("verdict") in VERIFIED for r in results)

    def mean_speedup(self, cid: str) -> float | None:
        """The median over a candidate's evaluations: one lucky measurement cannot crown it."""
        sp = [r["speedup"] for r in self.evals.get(cid, []) if r.get("speedup")]
        return statistics.median(sp) if sp else None

    def faster(self, cid: str) -> bool:
        """Verified faster than the reference (`estimate.verified_faster`)."""
        return verified_faster(self.evals.get(cid, []), self.cfg.eval.noise_floor, self.cfg.outlier_gap)

    def best(self) -> str | None:
        """The answer: the verified-faster proposed candidate with the highest estimate, or
        None when there is none and the reference stands (never slower than it). The
        reference itself is never a candidate answer: its speedup against itself is noise."""
        ok = [cid for cid in self.cands if self.cands[cid].parent_ids and self.faster(cid)]
        return max(ok, key=lambda c: (self.estimate(c), len(self.evals[c])), default=None)

    def best_correct(self) -> str | None:
        """The best verified (correct) proposed candidate, faster or not: what the run found
        before the never-slower rule (reported as the raw result)."""
        ok = [cid for cid in self.cands if self.verified(cid) and self.cands[cid].parent_ids]
        return max(ok, key=lambda c: (self.estimate(c), len(self.evals[c])), default=None)

    # -- budget ---------------------------------------------------------------------------
    def elapsed(self) -> float:
        return self.stats.elapsed + time.monotonic() - self.started

    def out_of_budget(self) -> str:
        c = self.cfg
        if self.stats.evaluations >= c.budget:
            return f"evaluation budget spent ({c.budget})"
        if c.max_time is not None and self.elapsed() >= c.max_time:
            return f"time limit reached ({c.max_time:.0f}s)"
        if c.max_tokens is not None and self.stats.tokens >= c.max_tokens:
            return f"token limit reached ({c.max_tokens})"
        if c.max_cost is not None and self.stats.cost >= c.max_cost:
            return f"cost limit reached (${c.max_cost:.2f})"
        return ""

    # -- the steps --------------------------------------------------------------------------
    def add_candidate(self, cand: Candidate) -> bool:
        """Store a candidate; False (and no evaluation owed) if it is a near-duplicate."""
        self.cands[cand.id] = cand
        self.evals.setdefault(cand.id, [])
        self.store.add_candidate(self.run_id, cand)
        self.stats.tokens += int(cand.proposer.get("tokens_in", 0)) + int(cand.proposer.get("tokens_out", 0))
        self.stats.cost += float(cand.proposer.get("cost", 0.0))
        admitted, near, dist = self.net.admit(cand.id, cand.code)
        if not admitted:
            self.duplicates[cand.id] = near
            self.store.set_meta("duplicates", self.duplicates)
            self.on_event({"type": "duplicate", "candidate": cand.id, "near": near, "distance": dist})
        return admitted

    def _write(self, cid: str) -> Path:
        path = self.run_dir / "candidates" / f"{cid}{self.target.suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.cands[cid].code)
        return path

    def evaluate(self, cid: str) -> dict:
        path = self._write(cid)
        try:
            if self.evaluator is not None:
                result = self.evaluator(self.task_path, path, self.cfg.eval)
            else:
                result = self.target.evaluate(path, self.hidden)
        except Exception as e:  # noqa: BLE001 - a candidate gets a verdict; only the reference ends the run
            # KoptError is the evaluator's word on the task or the machine (everything a
            # candidate does is a verdict inside it): a broken task ends the run either way
            if not self.cands[cid].parent_ids or isinstance(e, KoptError):
                raise
            result = _failed(e, "evaluation")
        return self._record(cid, result)

    def evaluate_concurrently(self, cids: list[str]) -> None:
        """New candidates through the executor, recorded in the order they finish."""
        from concurrent.futures import as_completed

        futures = {self.executor.submit(self.task_path, self._write(cid), self.cfg.eval): cid for cid in cids}
        for fut in as_completed(futures):
            try:
                result = fut.result()
            except Exception as e:  # noqa: BLE001 - a lost worker is a verdict, not a crash of the run
                result = _failed(e, "executor")
            self._record(futures[fut], result)

    def _record(self, cid: str, result: dict) -> dict:
        self.store.add_evaluation(self.run_id, Evaluation(cid, result, machine=fingerprint()))
        self.evals[cid].append(result)
        self.stats.evaluations += 1
        self.store.set_meta("elapsed", self.elapsed())
        self.on_event({"type": "evaluation", "candidate": cid, "result": result, "stats": self.stats,
                       "iteration": self.iteration,
                       "best": self.best(), "best_speedup": self.mean_speedup(self.best() or "")})
        return result

    def context(self, parent: Candidate) -> dict:
        return {"task_source": self.task_source, "task_path": str(self.task_path), "parent": parent,
                "target": self.target,
                "parent_results": self.evals.get(parent.id, []),
                "lessons": summarize(self.cands, self.evals, self.duplicates),
                "candidates": self.cands, "evaluations": self.evals,  # the lineage's attempts, for LLM prompts
                "run_id": self.run_id}

    def run(self) -> str | None:
        if not self.cands:
            root = Candidate(code=self.target.baseline_code(), plan_step="reference (baseline)",
                             proposer={"model": "reference"})
            self.add_candidate(root)
        try:
            self._loop()
        except KeyboardInterrupt:
            self.stop_reason = "interrupted (Ctrl-C); resume with --resume"
        self.store.set_meta("elapsed", self.elapsed())
        return self.best()

    def _reevaluable(self, cid: str) -> bool:
        return self.verified(cid) and len(self.evals[cid]) < self.cfg.max_evals_per_candidate

    def contender(self) -> str | None:
        """The candidate the run would return while it lacks confirmation: a second
        measurement, a third when its two disagree by more than the outlier gap. A lucky
        first measurement falls back to earth; the answer then passes to the next best."""
        cid = self.best()
        if cid is None:
            return None
        logs = log_speedups(self.evals[cid])
        if self.confirmed_by_evaluator(cid, logs):
            return None
        need = 3 if len(logs) == 2 and abs(logs[0] - logs[1]) > self.cfg.outlier_gap else 2
        return cid if len(self.evals[cid]) < min(need, self.cfg.max_evals_per_candidate) else None

    def confirmed_by_evaluator(self, cid: str, logs: list[float]) -> bool:
        """Timed on a fresh pair of workers by the evaluator itself (`checks.remeasured`: kopt
        eval does so for every `faster` verdict and keeps the estimate nearer to 1), and well
        clear of the noise floor (half an outlier gap above it): another measurement would
        buy less than a new child. Nearer the floor one more still decides, as it keeps a
        truly slower answer out (benchmarks/studies/search_efficiency.py)."""
        timed_twice = any((r.get("checks") or {}).get("remeasured") for r in self.evals[cid])
        clear = math.log(1 + self.cfg.eval.noise_floor) + self.cfg.outlier_gap / 2
        return timed_twice and bool(logs) and combine(logs, self.cfg.outlier_gap) > clear

    def _reserve(self) -> int:
        """Evaluations kept back for confirming the best (at least one unless the share is 0)."""
        share = self.cfg.confirm_reserve
        return max(1, round(self.cfg.budget * share)) if share > 0 else 0

    def _confirm(self) -> str:
        """Confirm the contender until there is none or the budget is out; the stop reason, if any."""
        while not (reason := self.out_of_budget()):
            cid = self.contender()
            if cid is None:
                return ""
            self.evaluate(cid)
        return reason

    def undecided(self) -> str | None:
        """The correct candidate whose measurements say it beats the answer (or the noise
        floor) while its interval does not clear the floor yet, with room for another
        evaluation: the one worth the budget left when proposals run out. On a busy machine
        one interval can be 0.86-2.6x around a true 1.7x; stopping there returned the reference."""
        def point(c: str) -> float:  # no speedup number (a verdict-only `faster`): no point estimate
            logs = log_speedups(self.evals[c])
            return combine(logs, self.cfg.outlier_gap) if logs else -math.inf

        clear = math.log(1 + self.cfg.eval.noise_floor)
        answer = self.best()
        bar = max(clear, point(answer)) if answer else clear
        pool = [c for c in self.cands if self.cands[c].parent_ids and c not in self.duplicates
                and self.verified(c) and not self.faster(c)
                and len(self.evals[c]) < self.cfg.max_evals_per_candidate and point(c) > bar]
        return max(pool, key=point, default=None)

    def _decide_undecided(self) -> str:
        """Spend what is left of the budget on undecided candidates (then confirm whichever
        became the answer); the stop reason when the budget runs out."""
        while (cid := self.undecided()) is not None:
            if reason := self.out_of_budget():
                return reason
            self.evaluate(cid)
        return self._confirm() if self._reserve() else ""

    def _endgame(self) -> bool:
        """With only the reserve of the budget left, confirm the best before exploring
        further. True when the run should stop."""
        if self.cfg.budget - self.stats.evaluations > self._reserve():
            return False
        if reason := self._confirm():
            self.stop_reason = reason
            return True
        return False

    def _evaluate_pending_concurrently(self) -> None:
        """With an executor, the new children of a target whose evaluations may run apart
        (`parallel_eval`) go out together, as many as the budget allows before its reserve;
        the rest take the one-at-a-time path."""
        if self.executor is None or self.evaluator is not None or not self.target.parallel_eval:
            return
        room = self.cfg.budget - self.stats.evaluations - self._reserve()
        batch = self._pending()[: max(0, room)]
        if len(batch) > 1:
            self.evaluate_concurrently(batch)

    def _pending(self) -> list[str]:
        return [cid for cid, ev in self.evals.items() if not ev and cid not in self.duplicates]

    def _loop(self) -> None:
        while True:
            self.iteration += 1
            self._evaluate_pending_concurrently()
            for cid in self._pending():  # proposed before a kill, or new: evaluate first
                if self._endgame():
                    return
                self.evaluate(cid)
            if self._endgame():
                return
            if (reason := self.out_of_budget()):
                self.stop_reason = reason
                return
            # the queue: evaluated candidates with work left (a re-evaluation or an expansion);
            # one that has had both leaves it but can still be the best
            active = [c for c in self.cands if self.evals.get(c) and c not in self.duplicates
                      and (c not in self.expanded or (self.cfg.reevaluate_top and self._reevaluable(c)))]
            top = sorted(active, key=self.mean_score, reverse=True)[: self.cfg.top_k]
            progressed = False
            for cid in top if self.cfg.reevaluate_top else []:
                if self._reevaluable(cid):
                    if (reason := self.out_of_budget()):
                        self.stop_reason = reason
                        return
                    self.evaluate(cid)  # re-evaluation on fresh seeds
                    progressed = True
            for cid in top:
                if cid in self.expanded:
                    continue
                try:
                    children = self.proposer.propose(self.context(self.cands[cid]))
                except ProposerUnavailable as e:
                    self.stop_reason = f"proposer unavailable: {e}"
                    return
                self.expanded.add(cid)
                self.store.set_meta("expanded", sorted(self.expanded))
                self.on_event({"type": "expanded", "candidate": cid, "children": len(children)})
                for child in children:
                    self.add_candidate(child)
                    progressed = True
            if not progressed and not self._pending():
                reason = self._confirm() if self._reserve() else ""
                reason = reason or self._decide_undecided()
                self.stop_reason = reason or "search exhausted: the proposer has nothing new for any candidate"
                return
