"""Card writers for mining: what a slow -> fast pair's change becomes as a skill card. A pair
(`Pair`) is a slow and a fast version with their measured gain. The rules writer names the
change with the tree-sitter diff classifier and fills a card from what it knows about each kind
of change (and the curated card it maps to); the LLM writer asks a model for the card from the
diff and the measured gain."""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

from kopt.skills.diff_classifier import Change, strip_comments_and_strings
from kopt.skills.library import CardError, Library, parse_card
from kopt.skills.measure import Gain
from kopt.skills.schema import Card, How, When


@dataclass
class Pair:
    name: str
    slow: str
    fast: str
    language: str  # c | cpp | python
    gain: Gain
    source: str
    skills: list[str] = field(default_factory=list)

    @property
    def domain(self) -> str:
        if self.language in ("c", "cpp"):
            return "cuda" if "__global__" in self.fast else "cpp"
        if "triton.jit" in self.fast:
            return "triton"
        if "__global__" in self.fast:
            return "cuda"
        if re.search(r"load_cpp|load_inline|cpp_extension", self.fast):
            return "cpp"
        return "python"



# -- what rules know about each kind of change ----------------------------------------------------
# kind -> (curated card per domain, title, summary, keywords, risks)
KINDS: dict[str, tuple[dict, str, str, list[str], list[str]]] = {
    "algorithm": ({"cpp": "cpp-better-algorithm"}, "Lower the complexity with a better algorithm",
                  "Replace a nested scan with sorting, binary search, a sweep or a cache of results.",
                  ["nested loop", "quadratic", "search"], ["Ties, order and empty inputs behave differently."]),
    "data-structure": ({"cpp": "cpp-hash-containers", "python": "python-set-membership"},
                       "Pick a container with cheaper lookups", "Swap the container for one whose hot operation "
                       "(lookup, membership, insertion) is cheaper.", ["lookup", "membership", "container"],
                       ["Iteration order may change."]),
    "loop-order": ({"cpp": "cpp-loop-order"}, "Reorder nested loops for contiguous inner access",
                   "Interchange loops so the innermost loop walks memory with stride 1.", ["nested loops", "stride"],
                   ["Only valid when iterations are independent in the new order."]),
    "cache-blocking": ({"cpp": "cpp-cache-blocking"}, "Block loops for cache reuse",
                       "Tile long loops so each block of data is reused while cached.", ["tiling", "cache"],
                       ["Edge blocks need bounds."]),
    "fusion": ({"cpp": "cpu-fuse-elementwise-chain", "python": "torch-fuse-elementwise-chain",
                "cuda": "cuda-kernel-fusion", "triton": "triton-fused-epilogue"},
               "Fuse consecutive operations into one pass", "Do several elementwise steps in one pass over memory.",
               ["fuse", "elementwise"], ["Broadcasting and formulas must match the reference."]),
    "loop-fusion": ({}, "Fuse consecutive loops over the same range into one",
                    "Several loops that each stream the same range (and store temporaries between them) become one "
                    "loop that does every step per element while it is in registers; the temporary arrays go away.",
                    ["consecutive loops", "same range", "temporary array", "fuse"],
                    ["Only valid when a later loop does not need results of an earlier one from other indices.",
                     "Floating-point sums may be taken in a different order."]),
    "fast-input": ({"cpp": "cpp-fast-io", "python": "python-fast-io"}, "Read input in bulk",
                   "Read all input at once and parse it without per-token library overhead.", ["input", "stdin"],
                   ["Must handle every number format the input can hold."]),
    "buffered-output": ({"cpp": "cpp-buffered-output", "python": "python-fast-io"}, "Buffer output",
                        "Write output in one go instead of flushing per line.", ["output", "flush"],
                        ["Interactive programs need flushing."]),
    "hoist-allocation": ({"cpp": "cpp-hoist-allocation"}, "Allocate once outside the hot loop",
                         "Create buffers and containers once before the loop and reuse them.",
                         ["allocation", "loop", "buffer"], ["Reused state must be reset each iteration."]),
    "openmp": ({"cpp": "cpp-openmp-parallel-for"}, "Parallelise independent iterations",
               "Run independent loop iterations on all cores.", ["parallel", "threads"], ["Shared writes race."]),
    "simd": ({"cpp": "cpp-simd-friendly-loops"}, "Make the inner loop vectorise",
             "Remove aliasing and branches so the compiler emits SIMD code.", ["simd", "vectorize"],
             ["__restrict is a promise the caller must keep."]),
    "compiler-flags": ({"cpp": "cpp-compiler-flags"}, "Compile with better flags",
                       "Use optimisation and target flags suited to the machine.", ["flags", "-O3"],
                       ["Native code may not run on other CPUs."]),
    "avoid-copy": ({"python": "torch-avoid-contiguous-copies", "cpp": "cpp-pass-by-reference"},
                   "Avoid needless copies", "Keep data where it is instead of copying it.", ["copy"],
                   ["Aliasing: writes through a view change the original."]),
    "in-place": ({"python": "torch-inplace-ops"}, "Work in place on temporaries",
                 "Reuse a temporary's memory for the next step.", ["in-place"],
                 ["Never modify inputs that the caller still holds."]),
    "reserve": ({"cpp": "cpp-vector-reserve"}, "Reserve capacity up front",
                "Reserve the final size before filling a container.", ["reserve"], ["Over-reserving wastes memory."]),
    "strength-reduction": ({"cpp": "cpp-strength-reduction"}, "Use cheaper arithmetic in hot loops",
                           "Replace division, pow and sqrt in loops by cheaper equivalents.", ["division", "pow"],
                           ["Not bit-identical for floats."]),
    "string-building": ({"python": "python-string-join"}, "Build strings once",
                        "Collect pieces and join once instead of concatenating in a loop.", ["string", "join"],
                        ["Separators must stay identical."]),
}
TRIGGERS = {
    "loop-fusion": [r"for\s*\([^)]*\)[^{;]*[;{][\s\S]{0,200}\n\s*for\s*\([^)]*\)", r"(malloc|new|vector<)"],
    "hoist-allocation": [r"for\s+\w+\s+in\s+[^:]+:\s*\n\s+\w+\s*=\s*(\[|list\(|dict\(|set\()"],
}


def hunks(slow: str, fast: str, language: str, limit: int = 14) -> tuple[str, str]:
    """The changed lines of each side (first hunks, trimmed): the card's before/after sketch,
    without comments or string contents (they are a candidate's words, not code)."""
    a = strip_comments_and_strings(slow, language).splitlines()
    b = strip_comments_and_strings(fast, language).splitlines()
    before, after = [], []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op != "equal":
            before += a[i1:i2]
            after += b[j1:j2]
    trim = lambda lines: "\n".join(ln.rstrip() for ln in lines[:limit]) + ("\n..." if len(lines) > limit else "")
    return trim(before) or "(nothing removed)", trim(after) or "(nothing added)"


def unified_diff(slow: str, fast: str, limit: int = 300) -> str:
    lines = list(difflib.unified_diff(slow.splitlines(), fast.splitlines(), "slow", "fast", lineterm="", n=2))
    return "\n".join(lines[:limit]) + ("\n... (diff trimmed)" if len(lines) > limit else "")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:48].strip("-") or "skill"


# -- card writers ---------------------------------------------------------------------------------
class RulesWriter:
    """Names the skill with the diff classifier: an existing card when one covers the kind
    of change in this domain, else a new card built from the kind's template and the pair."""

    name = "rules"

    def write(self, pair: Pair, changes: list[Change], library: Library) -> Card | str | None:
        if not changes:
            return None
        kind = changes[0].kind
        known, title, summary, keywords, risks = KINDS[kind]
        if known.get(pair.domain) in library.cards:
            return known[pair.domain]
        before, after = hunks(pair.slow, pair.fast, pair.language)
        detail = "; ".join(c.detail for c in changes)
        triggers = TRIGGERS.get(kind, [])
        return Card(id=f"mined-{pair.domain}-{kind}", type="operator", domain=pair.domain, title=title,
                    tags=[kind, *(c.kind for c in changes[1:])],
                    when=When(code=triggers, keywords=keywords),
                    how=How(summary=f"{summary} First seen in {pair.name}: {detail}.", before=before, after=after),
                    risks=risks, origin="mined", signature=[c.kind for c in changes])


CARD_EXAMPLE = """id: cpp-vector-reserve
type: operator
domain: cpp
title: Reserve container capacity when the final size is known
tags: [reserve, allocation]
when:
  code: ['\\.push_back\\(']
  keywords: [push_back, reallocation]
how:
  summary: A vector grown by push_back reallocates about log2(n) times; reserve(n) first.
  before: |
    for (int i = 0; i < n; ++i) v.push_back(f(i));
  after: |
    v.reserve(n);
    for (int i = 0; i < n; ++i) v.push_back(f(i));
risks:
  - Reserving far more than needed wastes memory."""


def card_messages(pair: Pair, changes: list[Change], library: Library) -> list[dict]:
    gain = (f"measured {pair.gain.speedup:.2f}x faster ({pair.gain.method}: {pair.gain.note})"
            if pair.gain.speedup else f"not measured ({pair.gain.note})")
    hints = "; ".join(f"{c.kind}: {c.detail}" for c in changes) or "none"
    known = "\n".join(f"- {c.id}: {c.title}" for c in library.select(domain=pair.domain)) or "(none)"
    return [{"role": "system", "content": "You distil code optimisations into reusable skill cards (YAML). "
                                          "A card describes the general technique, not this one program."},
            {"role": "user", "content":
                f"A {pair.language} program was made faster ({gain}).\nStatic diff classifier: {hints}\n\n"
                f"Diff (slow -> fast):\n```diff\n{unified_diff(pair.slow, pair.fast)}\n```\n\n"
                f"Cards already in the library for domain {pair.domain}:\n{known}\n\n"
                "Write ONE skill card for the technique that made it faster, as YAML in one ```yaml block, with "
                "exactly these fields: id (lowercase words joined by '-'), type (operator or meta), domain "
                "(cuda, triton, cpp, python or any), title, tags (list), when (code: list of Python regexes that "
                "find the slow pattern in other programs; keywords: list), how (summary, before, after: short "
                "general sketches), risks (list). No evidence field: kopt records the measurement itself.\n"
                f"Example:\n```yaml\n{CARD_EXAMPLE}\n```"}]


def card_from_answer(text: str, where: str) -> Card:
    import yaml

    m = re.search(r"```(?:ya?ml)?\s*\n(.*?)```", text, re.S)
    body = m.group(1) if m else text
    try:
        data = yaml.safe_load(body)
    except yaml.YAMLError as e:
        raise CardError(f"{where}: the answer is not valid YAML ({getattr(e, 'problem', e)}); fix: answer with one "
                        f"```yaml block holding the card") from None
    if isinstance(data, dict):
        data.pop("evidence", None)  # numbers come from kopt's measurement, never from the model
        data["origin"] = "mined"
    return parse_card(data, where)


class LLMWriter:
    """The model writes the card from the diff and the measured gain; an invalid card goes
    back to it once with the validation error."""

    def __init__(self, chat, retries: int = 1):
        self.chat, self.retries = chat, retries
        self.name = chat.name

    def write(self, pair: Pair, changes: list[Change], library: Library) -> Card | str | None:
        messages = card_messages(pair, changes, library)
        error = None
        for _ in range(self.retries + 1):
            answer = self.chat.complete(messages).text
            try:
                card = card_from_answer(answer, f"card from {self.name} for {pair.name}")
                how = card.how.model_copy(update={
                    "before": strip_comments_and_strings(card.how.before, pair.language),
                    "after": strip_comments_and_strings(card.how.after, pair.language)})
                return card.model_copy(update={"signature": [c.kind for c in changes], "how": how})
            except CardError as e:
                error = e
                messages = messages + [{"role": "assistant", "content": answer},
                                       {"role": "user", "content": f"That card is invalid: {e}. Send the corrected "
                                                                   f"card."}]
        raise error
