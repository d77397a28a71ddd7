"""Turning a model's answer into code: a whole file, or SEARCH/REPLACE blocks applied to
the parent. A block that does not apply is an error sent back to the model, never
skipped in silence."""
from __future__ import annotations

import re

BLOCK = re.compile(r"<{5,9} SEARCH\n(.*?)\n={5,9}\n(.*?)\n>{5,9} REPLACE", re.S)
FENCE = re.compile(r"```(?:python|py)?\n(.*?)```", re.S)


class EditError(Exception):
    """The answer could not be turned into code; the message is what the model is told."""


def apply_blocks(code: str, blocks: list[tuple[str, str]]) -> str:
    for i, (search, replace) in enumerate(blocks, 1):
        count = code.count(search)
        if count == 0:
            first = search.strip().splitlines()[0][:80] if search.strip() else "(empty)"
            raise EditError(f"SEARCH block {i} does not match the current code exactly (first line: {first!r}); "
                            f"copy the lines to replace verbatim")
        if count > 1:
            raise EditError(f"SEARCH block {i} matches {count} places; include more context to make it unique")
        code = code.replace(search, replace, 1)
    return code


def code_from_answer(answer: str, parent_code: str) -> tuple[str, str]:
    """(new code, edit kind). Raises EditError with a message for the model."""
    blocks = BLOCK.findall(answer)
    if blocks:
        code, kind = apply_blocks(parent_code, blocks), "search/replace"
    else:
        fences = [f for f in FENCE.findall(answer) if "ModelNew" in f]
        if not fences:
            raise EditError("no code found: answer with one ```python block holding the whole file that defines "
                            "class ModelNew, or with SEARCH/REPLACE blocks against the current code")
        code, kind = max(fences, key=len), "whole file"
    if "class ModelNew" not in code:
        raise EditError("the resulting code defines no class ModelNew")
    try:
        compile(code, "<candidate>", "exec")
    except SyntaxError as e:
        raise EditError(f"the resulting code has a syntax error at line {e.lineno}: {e.msg}") from None
    return code, kind
