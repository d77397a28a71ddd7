"""Cost-guided search for legal inputs on which a program is slow (architecture §7).

Order: seeds (tests, `--seeds`, generator outputs) are validated and costed; the largest is
pushed to the validator's size limit; then mutation rounds pick a parent from a corpus of the
costliest legal inputs, apply a structure-aware mutator, keep the child if the validator
accepts it, and cost it. Fitness is the reference program's instruction count under
cachegrind (wall time where valgrind is missing). The result is compared with random legal
inputs of the same shape and size, so the slowdown says what the search bought.
"""
from __future__ import annotations

import hashlib
import random
import statistics
import time
from dataclasses import dataclass, field

from kopt.agent.stress.edges import BOUND, _edge
from kopt.agent.stress.guided import guided_search
from kopt.agent.stress.mutators import TokenInput, column, is_int, mutate, randomize, resize
from kopt.agent.stress.structures import random_like
from kopt.agent.stress.validator import Validator
from kopt.sandboxes.program_runner import ProgramRunner, valgrind_path

RUN_TIMEOUT_S = 10.0


@dataclass
class Found:
    data: bytes
    cost: float
    origin: str   # seed NAME | size push | mutator name(s) | generator NAME
    score: float | None = None  # with a grammar: cost / cost of a random input of the same shape

    @property
    def rank(self) -> float:
        return self.cost if self.score is None else self.score

    @property
    def key(self) -> str:
        return hashlib.sha256(self.data).hexdigest()[:16]


@dataclass
class StressResult:
    inputs: list[Found]
    baseline: float
    tried: int
    metric: str
    log: list[str] = field(default_factory=list)

    @property
    def best(self) -> Found:
        return self.inputs[0]

    @property
    def slowdown(self) -> float:
        return self.best.cost / self.baseline if self.baseline else 0.0


class CostMeter:
    """The reference program's cost on an input, cached by content."""

    def __init__(self, program: ProgramRunner):
        self.program = program
        self.counting = valgrind_path() is not None
        self.metric = "instructions" if self.counting else "wall_ms"
        self.cache: dict[str, float | None] = {}
        self.runs = 0

    def cost(self, data: bytes) -> float | None:
        """None when the program fails or times out on DATA (a legal input it cannot handle)."""
        key = hashlib.sha256(data).hexdigest()
        if key not in self.cache:
            self.runs += 1
            if self.counting:
                r = self.program.run(data, RUN_TIMEOUT_S * 50, count=True)
                self.cache[key] = float(r.instructions) if r.ok and r.instructions else None
            else:
                runs = [self.program.run(data, RUN_TIMEOUT_S) for _ in range(3)]
                self.cache[key] = statistics.median(r.wall_ms for r in runs) if all(r.ok for r in runs) else None
        return self.cache[key]


def probe_bounds(validator: Validator, inp: TokenInput) -> dict[int, tuple[int, int]]:
    """Per data line, the [lo, hi] a value may take, by binary search on one element against the
    validator (starting from the values the input holds, which are legal)."""
    bounds = {}
    for row in inp.numeric_lines()[:4]:
        values, cells = column(inp, row)
        if not values:
            continue
        i, j = cells[0]

        def legal(v: int, i: int = i, j: int = j) -> bool:
            probe = inp.copy()
            probe.lines[i][j] = str(v)
            return validator.accepts(probe.render())

        bounds[row] = (_edge(legal, min(values), -BOUND), _edge(legal, max(values), BOUND))
    return bounds


def push_size(validator: Validator, inp: TokenInput, max_bytes: int, rng: random.Random) -> TokenInput:
    """INP grown to the largest size the validator and MAX_BYTES allow: along its largest count
    link (n before n tokens / n lines), or, with no count, its longest string token."""
    if inp.links:
        link = max(inp.links, key=lambda k: len(inp.lines[k.data]) if k.how == "tokens" else len(inp.lines) - k.data)
        n = int(inp.lines[link.count][link.pos])

        def make(m: int) -> TokenInput:
            return resize(inp, link, m, rng)
    else:
        strings = inp.string_tokens()
        if not strings:
            return inp
        i, j = max(strings, key=lambda c: len(inp.lines[c[0]][c[1]]))
        text, n = inp.lines[i][j], len(inp.lines[i][j])

        def make(m: int) -> TokenInput:
            out = inp.copy()
            out.lines[i][j] = (text * (m // len(text) + 1))[:m]
            return out

    per_item = max(1, len(inp.render()) // max(1, n))
    cap = max_bytes // per_item + 1

    def legal(m: int) -> bool:
        data = make(m).render()
        return len(data) <= max_bytes and validator.accepts(data)

    hi = n
    while hi * 2 <= cap and legal(hi * 2):
        hi *= 2
    return make(_edge(legal, hi, min(hi * 2, cap + 1)))


class StressSearch:
    """One search: a validator, a costed reference program, seeds, and a budget of costings."""

    def __init__(self, validator: Validator, meter: CostMeter, budget: int = 40, max_bytes: int = 1 << 20,
                 corpus_size: int = 8, seed: int = 0, mutate_inputs: bool = True, push: bool = True,
                 progress=None, max_time_s: float | None = None, grammar=None, max_cost: float = 5e8):
        self.grammar, self.max_cost = grammar, max_cost
        self.shape_costs: dict[tuple, float | None] = {}
        self.overhead: float | None = None
        self.validator, self.meter, self.budget, self.max_bytes = validator, meter, budget, max_bytes
        self.corpus_size, self.mutate_inputs, self.push = corpus_size, mutate_inputs, push
        self.rng = random.Random(seed)
        self.corpus: list[Found] = []
        self.tried = 0
        self.log: list[str] = []
        self.progress = progress or (lambda msg: None)
        self.bounds: dict[int, tuple[int, int]] = {}
        self.weights: dict[str, float] = {}
        self.alphabet = ""
        self.deadline = time.monotonic() + max_time_s if max_time_s else float("inf")

    def consider(self, data: bytes, origin: str) -> Found | None:
        """Validate and cost DATA; keep it in the corpus if it is among the costliest."""
        if len(data) > self.max_bytes or any(f.data == data for f in self.corpus):
            return None
        self.tried += 1
        if not self.validator.accepts(data):
            return None
        cost = self.meter.cost(data)
        if cost is None:
            self.log.append(f"{origin}: the program fails or times out on a legal input")
            return None
        found = Found(data, cost, origin, self.score(data, cost) if self.grammar is not None else None)
        self.corpus.append(found)
        self.corpus.sort(key=lambda f: -f.rank)
        del self.corpus[self.corpus_size:]
        return found

    def run(self, seeds: list[tuple[str, bytes]], compare: bool = True) -> StressResult:
        """The search from SEEDS; with `compare`, also the random-input baseline (3 more costings)."""
        for name, data in seeds:
            self.consider(data, name)
        self.alphabet = "".join(sorted({ch for f in self.corpus for line in TokenInput.parse(f.data).lines
                                        for tok in line if not is_int(tok) for ch in tok}))
        if not self.corpus:
            return StressResult([], 0.0, self.tried, self.meter.metric, self.log)
        spent = 0
        if self.grammar is not None:  # structured generators first, within the inferred grammar
            share = self.budget if not self.mutate_inputs else max(12, self.budget * 7 // 10)
            spent = guided_search(self, self.grammar, min(share, self.budget), self.cost_cap())
        largest = TokenInput.parse(max(self.corpus, key=lambda f: len(f.data)).data)
        if self.grammar is not None:
            self.bounds = probe_bounds(self.validator, TokenInput.parse(self.corpus[0].data))
        elif self.push:
            pushed = push_size(self.validator, largest, self.max_bytes, self.rng)
            self.bounds = probe_bounds(self.validator, pushed)
            self.consider(pushed.render(), "size push")
            self.consider(randomize(pushed, self.bounds, self.rng, self.alphabet).render(), "size push + random values")
            self.progress(f"size pushed to {pushed.size()} tokens; value bounds {self.bounds}")
        else:
            self.bounds = probe_bounds(self.validator, largest)
        while self.mutate_inputs and spent < self.budget and time.monotonic() < self.deadline:
            parent = self.corpus[0] if self.rng.random() < 0.6 else self.rng.choice(self.corpus)
            child, name = mutate(TokenInput.parse(parent.data), self.bounds, self.rng, self.weights)
            if self.rng.random() < 0.3:
                child, second = mutate(child, self.bounds, self.rng, self.weights)
                name = f"{name}+{second}"
            before = self.meter.runs
            found = self.consider(child.render(), name)
            spent += 1 if self.meter.runs > before else 0.25  # invalid or repeated children cost little
            if found is not None and found is self.corpus[0]:
                for part in name.split("+"):  # mutators that raised the best cost get picked more
                    self.weights[part] = self.weights.get(part, 1.0) + 2.0
                self.progress(f"new costliest input: {name} -> {found.cost:,.0f} {self.meter.metric}")
        baseline = self.baseline(self.corpus[0]) if compare else 0.0
        return StressResult(list(self.corpus), baseline, self.tried, self.meter.metric, self.log)

    def score(self, data: bytes, cost: float) -> float:
        """COST over the cost of one random legal input of DATA's shape (costed once per shape),
        both less the cost of the smallest legal input (start-up, reading): the search then
        prefers what the slowdown measures, not merely bigger inputs, and small inputs already
        tell structures apart. Shapes whose random inputs are illegal score 1."""
        if self.overhead is None:
            self.overhead = self.meter.cost(self.grammar.family.text(self.grammar.example)) or 0.0
        x = self.grammar.family.read(data)
        shape = TokenInput.parse(data) if x is None else None
        key = (len(x.nums), x.n, x.k, tuple(len(t) for t in x.strs)) if x is not None else \
            tuple(len(t) for t in shape.lines)
        if key not in self.shape_costs:
            sample = (self.grammar.family.text(random_like(self.grammar, x, self.rng)) if x is not None
                      else randomize(shape, self.bounds, self.rng, self.alphabet).render())
            self.shape_costs[key] = self.meter.cost(sample) if self.validator.accepts(sample) else None
        base = self.shape_costs[key]
        return 1.0 if base is None else (cost - self.overhead) / max(1.0, base - self.overhead)

    def cost_cap(self) -> float:
        """MAX_COST instructions, or as wall milliseconds (about 1e6 instructions a ms) without valgrind."""
        return self.max_cost if self.meter.counting else self.max_cost / 1e6

    def random_like(self, best: Found) -> bytes:
        """A random input shaped and sized like BEST: from the grammar when BEST is an instance of
        it, else BEST's tokens with random values in the probed bounds."""
        x = self.grammar.family.read(best.data) if self.grammar is not None else None
        if x is not None:
            return self.grammar.family.text(random_like(self.grammar, x, self.rng))
        return randomize(TokenInput.parse(best.data), self.bounds, self.rng, self.alphabet).render()

    def baseline(self, best: Found, samples: int = 3) -> float:
        """Median cost of random legal inputs shaped and sized like BEST."""
        costs = []
        for _ in range(samples * 4):
            data = self.random_like(best)
            if self.validator.accepts(data):
                cost = self.meter.cost(data)
                if cost is not None:
                    costs.append(cost)
            if len(costs) >= samples:
                break
        return statistics.median(costs) if costs else best.cost
