"""Turning a model's answer into a KernelBench candidate: a whole file defining `ModelNew`, or
edits (SEARCH/REPLACE blocks, unified diffs) applied to the parent. The reading rules are in
`answers`; an answer that yields no valid code is an error sent back to the model, never
skipped in silence."""
from __future__ import annotations

from kopt.agent.proposers.prompting.answers import LANGS, EditError, defines_class, parse_answer
from kopt.agent.proposers.prompting.answers import SR_BLOCK as BLOCK  # noqa: F401 (re-export for older callers)
from kopt.agent.proposers.prompting.answers import apply_blocks as _apply_blocks


def apply_blocks(code: str, blocks: list[tuple[str, str]]) -> str:
    """The code after the blocks (the notes on whitespace-insensitive matches are dropped)."""
    return _apply_blocks(code, blocks)[0]


def code_from_answer(answer: str, parent_code: str) -> tuple[str, str]:
    """(new code, edit kind); the kind carries the parser's notes after "; ". Raises EditError
    with a message for the model."""
    code, kind, notes = parse_answer(answer, parent_code, LANGS["python"] | LANGS["cpp"], defines_class("ModelNew"),
                                     "defining class ModelNew")
    if "class ModelNew" not in code:
        raise EditError("the resulting code defines no class ModelNew")
    try:
        compile(code, "<candidate>", "exec")
    except SyntaxError as e:
        raise EditError(f"the resulting code has a syntax error at line {e.lineno}: {e.msg}") from None
    except (RecursionError, MemoryError, ValueError) as e:  # 4000 unary minus signs (red team 10)
        raise EditError(f"the resulting code cannot be compiled ({type(e).__name__}): split its long or deeply "
                        f"nested expressions") from None
    return code, "; ".join([kind, *notes])
