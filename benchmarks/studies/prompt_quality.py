"""What does the model see after each kind of failure?

`kopt optimize` runs against a scripted OpenAI-compatible server on 127.0.0.1 (tests/support/chat_server.py)
whose answers are, in order: a plan, a solution whose C++ does not compile, a wrong solution,
a slow one, and a reasoning-style answer (a <think> draft, then the final file). For every
request kopt sends, one row: what it asks for, its size in tokens (kopt's estimate and what
the server counted), how many earlier attempts it carries as turns, and whether it holds the
compiler's error, the mismatch detail, the reference's profile and the hardware. Then the
candidate kopt evaluated from the reasoning-style answer: it must be the final file, not the draft.

    python benchmarks/studies/prompt_quality.py [--task benchmarks/examples/relu_task.py] [--show N]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]  # benchmarks/
TASK = HERE / "examples" / "relu_task.py"

PLAN = ("1. [none] port the relu to a C++ loop\n2. [none] check the values\n3. [none] keep what is fast\n"
        "4. [none] parallelise with OpenMP")
BROKEN_CPP = '''```python
import ctypes

import torch
import torch.nn as nn

from kopt.sandboxes.native import load_cpp

SOURCE = r"""
#include <cstdint>
extern "C" void relu(const float* x, float* y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] > 0.0f ? x[i] : 0.0f
}
"""
_lib = load_cpp(SOURCE)


class ModelNew(nn.Module):
    def forward(self, x):
        y = torch.empty_like(x)
        _lib.relu(ctypes.c_void_p(x.data_ptr()), ctypes.c_void_p(y.data_ptr()), ctypes.c_int64(x.numel()))
        return y
```'''
WRONG = '''The clamp is cheaper than relu:

```python
import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def forward(self, x):
        return x.clamp(min=0.0) * 1.01
```'''
SLOW = '''```python
import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def forward(self, x):
        rows = [torch.relu(r) for r in x]
        for _ in range(20):
            rows = [r.clone() for r in rows]
        return torch.stack(rows)
```'''
REASONING = '''<think>
The last answer was slow because of the per-row loop. A first idea:

```python
import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def forward(self, x):
        return x  # DRAFT: forgets the relu, and this comment makes the draft the longest block of the answer
```

No, that drops the activation. The final answer must apply it.
</think>

```python
import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def forward(self, x):
        return torch.relu(x)  # FINAL
```'''
ANSWERS = [BROKEN_CPP, WRONG, SLOW, REASONING]
MARKS = {  # what each check looks for in a request's text
    "compiler error": "of your solution: for (int64_t i",
    "mismatch": "first mismatches",
    "speedup CI": "95% CI",
    "profile": "Where the reference's time goes",
    "hardware": "CPU: ",
}


def scripted_server():
    """A ChatServer answering plans with PLAN and code requests with ANSWERS in order (the last
    one repeated)."""
    from tests.support.chat_server import ChatServer

    state = {"code": 0}

    def script(body, n):
        if "Plan only" in body["messages"][-1]["content"]:
            return 200, PLAN, 0
        state["code"] += 1
        return 200, ANSWERS[min(state["code"], len(ANSWERS)) - 1], 0

    return ChatServer(script)


def run(run_dir: Path, task: Path = TASK, budget: int = 9, eval_cfg=None) -> tuple[list[dict], list]:
    """(the requests kopt sent, the stored candidates) of one scripted `kopt optimize`."""
    from kopt.agent.runs.store import Store
    from kopt.agent.search.optimize import config_from_kwargs, run_optimize
    from kopt.sandboxes.evaluator import EvalConfig

    with scripted_server() as srv:
        cfg = config_from_kwargs(model="openai/scripted", base_url=srv.url, budget=budget,
                                 eval_cfg=eval_cfg or EvalConfig(rounds=3, max_timing_s=2))
        cfg.model.samples = 1
        run_optimize(task, cfg, run_dir=run_dir, quiet=True)
    store = Store.open_run_dir(run_dir)
    try:
        return srv.requests, store.candidates()
    finally:
        store.close()


def rows(requests: list[dict]) -> list[dict]:
    from kopt.agent.proposers.llm_proposer import message_tokens

    out = []
    for i, req in enumerate(requests, 1):
        msgs = req["messages"]
        text = "\n".join(m["content"] for m in msgs)
        out.append({"request": i, "asks": "plan" if "Plan only" in msgs[-1]["content"] else "code",
                    "tokens": message_tokens(msgs), "server_tokens": sum(len(m["content"].split()) for m in msgs),
                    "attempts": sum(m["role"] == "assistant" for m in msgs),
                    **{k: mark in text for k, mark in MARKS.items()}})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", type=Path, default=TASK)
    ap.add_argument("--budget", type=int, default=9)
    ap.add_argument("--show", type=int, default=0, help="print the last user message of request N")
    args = ap.parse_args()
    sys.path.insert(0, str(HERE.parent))  # tests/support/chat_server.py, the loopback server
    with tempfile.TemporaryDirectory() as tmp:
        requests, cands = run(Path(tmp) / "run", args.task, args.budget)
    print("| # | asks | tokens (est.) | words | attempts as turns | " + " | ".join(MARKS) + " |")
    print("|---|---|---|---|---|" + "---|" * len(MARKS))
    for r in rows(requests):
        print(f"| {r['request']} | {r['asks']} | {r['tokens']} | {r['server_tokens']} | {r['attempts']} | "
              + " | ".join("yes" if r[k] else "-" for k in MARKS) + " |")
    final = [c for c in cands if "<think>" in c.completion]
    for c in final:
        print(f"\nreasoning-style answer -> candidate {c.id}: "
              f"{'final file' if 'FINAL' in c.code and 'DRAFT' not in c.code else 'WRONG: the draft'}")
    if args.show:
        last = requests[args.show - 1]["messages"][-1]["content"]
        print(f"\n--- last user message of request {args.show} ---\n{last}")


if __name__ == "__main__":
    main()
