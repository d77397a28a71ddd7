"""Reading a model's answer the way today's models write them.

Reasoning models draft inside `<think>` (or a harmony analysis channel) before the final file;
hosted models tag fences `python3`, `Python`, `py` or nothing, use tildes, nest fences in
longer fences, and add prose after the code. The rules here: reasoning is stripped first; the
file is the last *complete* fenced block that defines what the target needs (not the
longest, which is often a draft); SEARCH/REPLACE blocks and unified diffs are edits to the
parent, and an edit whose text differs from the code only in whitespace is applied with a
note, never silently.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass


class EditError(Exception):
    """The answer could not be turned into code; the message is what the model is told."""


LANGS = {
    "python": {"python", "python3", "py", "py3", "pytorch", "ipython", "python-repl"},
    "cpp": {"cpp", "c++", "cxx", "cc", "hpp", "h", "cuda", "cu", "c"},
    "c": {"c", "h", "cpp", "c++"},
    "diff": {"diff", "patch", "udiff"},
}
SUFFIX_LANG = {".py": "python", ".cpp": "cpp", ".cc": "cpp", ".cu": "cpp", ".c": "c", ".h": "cpp", ".diff": "diff",
               ".patch": "diff"}

PAIRED_THINK = re.compile(r"<(think|thinking|reasoning|reflection|analysis)>.*?</\1>", re.S | re.I)
CLOSE_THINK = re.compile(r"</(?:think|thinking|reasoning)>|◁/think▷", re.I)
OPEN_THINK = re.compile(r"<(?:think|thinking|reasoning)>|◁think▷", re.I)
HARMONY_FINAL = re.compile(r"<\|channel\|>final<\|message\|>", re.I)
FENCE_OPEN = re.compile(r"^[ \t]{0,3}(`{3,}|~{3,})[ \t]*([^`\n]*?)[ \t]*$")
SR_BLOCK = re.compile(r"^[ \t]*<{5,9}[ \t]*SEARCH[^\n]*\n(.*?)"
                      r"^[ \t]*={5,9}[ \t]*\n(.*?)"
                      r"^[ \t]*>{5,9}[ \t]*REPLACE[^\n]*$", re.S | re.M)
MAIN = re.compile(r"\bmain\s*\(")
CODE_START = re.compile(r"(import |from |#|class |def |@|int |using |template|struct |static )")
HUNK = re.compile(r"^@@ [^\n]*@@[^\n]*$", re.M)


@dataclass(frozen=True)
class Fence:
    lang: str  # the normalised tag: "python", "cpp", "diff", "" (untagged) or the raw tag lowercased
    body: str
    complete: bool  # a closing fence was found (an answer cut off by max_tokens leaves the last one open)


def strip_reasoning(text: str) -> str:
    """The answer without its reasoning: paired <think>-style sections, everything before a
    closing tag whose opening one the chat template put in the prompt, an unclosed trailing
    reasoning section (the model ran out of tokens while thinking), and a harmony analysis channel."""
    final = list(HARMONY_FINAL.finditer(text))
    if final:
        text = text[final[-1].end():]
    text = PAIRED_THINK.sub("", text)
    closes = list(CLOSE_THINK.finditer(text))
    if closes:
        text = text[closes[-1].end():]
    opened = OPEN_THINK.search(text)
    if opened:
        text = text[:opened.start()]
    return text.replace("<|end|>", "").replace("<|return|>", "")


def normalise_lang(tag: str) -> str:
    """`Python3`, `py`, `{.python}`, `python title="x.py"`, `solution.py` -> "python"."""
    word = (tag.strip().strip("{}").lstrip(".").split() or [""])[0].lower()
    for lang in ("python", "cpp", "diff"):
        if word in LANGS[lang]:
            return lang
    for suffix, lang in SUFFIX_LANG.items():
        if word.endswith(suffix):
            return lang
    return word


def fences(text: str) -> list[Fence]:
    """Fenced blocks in order (CommonMark's rule: a block closes at a line holding only a fence
    of the same character at least as long, so ``` inside a ```` block or inside a string
    on a code line does not end it)."""
    out: list[Fence] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = FENCE_OPEN.match(lines[i])
        if not m:
            i += 1
            continue
        mark, tag = m.group(1), m.group(2)
        body: list[str] = []
        j = i + 1
        closed = False
        while j < len(lines):
            s = lines[j].strip()
            if s and set(s) == {mark[0]} and len(s) >= len(mark):
                closed = True
                break
            body.append(lines[j])
            j += 1
        out.append(Fence(normalise_lang(tag), "\n".join(body) + "\n", closed))
        i = j + 1
    return out


def last_file(text: str, langs: set[str], defines: Callable[[str], bool]) -> str | None:
    """The last complete block tagged with one of `langs` (or untagged) that `defines` accepts."""
    picks = [f.body for f in fences(text) if f.complete and (f.lang in langs or f.lang == "")
             and not SR_BLOCK.search(f.body) and defines(f.body)]
    return picks[-1] if picks else None


def defines_class(name: str) -> Callable[[str], bool]:
    pattern = re.compile(rf"^class {re.escape(name)}\b", re.M)
    return lambda body: bool(pattern.search(body))


def search_replace_blocks(text: str) -> list[tuple[str, str]]:
    return [(s.removesuffix("\n"), r.removesuffix("\n")) for s, r in SR_BLOCK.findall(text)]


def diff_blocks(text: str) -> list[tuple[str, str]]:
    """Unified-diff hunks as (old lines, new lines) pairs, applied like SEARCH/REPLACE blocks
    (line numbers are ignored: models get them wrong more often than the context)."""
    sources = [f.body for f in fences(text) if f.lang == "diff"] or [text]
    pairs = []
    for src in sources:
        heads = list(HUNK.finditer(src))
        for h, nxt in zip(heads, heads[1:] + [None]):
            old, new = [], []
            for line in src[h.end():nxt.start() if nxt else len(src)].split("\n")[1:]:
                if line.startswith(("--- ", "+++ ", "diff --git", "index ")) or FENCE_OPEN.match(line):
                    break
                if line.startswith("\\"):
                    continue
                if line and line[0] not in "+- ":
                    break  # prose after the hunk
                tag, rest = (line[:1], line[1:]) if line else (" ", "")
                if tag != "+":
                    old.append(rest)
                if tag != "-":
                    new.append(rest)
            while old and new and not old[-1].strip() and not new[-1].strip():
                old.pop(), new.pop()
            if any(x.strip() for x in old):
                pairs.append(("\n".join(old), "\n".join(new)))
    return pairs


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _loose_matches(code_lines: list[str], search: list[str]) -> list[tuple[int, int]]:
    """(first, last+1) line spans of the code whose non-blank lines equal the search's non-blank
    lines after stripping each line's surrounding whitespace."""
    want = [s.strip() for s in search if s.strip()]
    if not want:
        return []
    nonblank = [i for i, line in enumerate(code_lines) if line.strip()]
    spans = []
    for k in range(len(nonblank) - len(want) + 1):
        if all(code_lines[nonblank[k + j]].strip() == want[j] for j in range(len(want))):
            spans.append((nonblank[k], nonblank[k + len(want) - 1] + 1))
    return spans


def _reindent(lines: list[str], delta: int) -> list[str]:
    if delta >= 0:
        return [(" " * delta + x) if x.strip() else x for x in lines]
    return [x[min(-delta, _indent(x)):] for x in lines]


def apply_blocks(code: str, blocks: list[tuple[str, str]], what: str = "SEARCH block") -> tuple[str, list[str]]:
    """Apply (search, replace) pairs in order: an exact match first; failing that, a match that
    ignores indentation, trailing spaces and blank lines (the replacement is re-indented by the
    same offset) with a note saying so. No match or several matches is an EditError."""
    notes = []
    for i, (search, replace) in enumerate(blocks, 1):
        count = code.count(search) if search.strip() else 0
        if count == 1:
            code = code.replace(search, replace, 1)
            continue
        if count > 1:
            raise EditError(f"{what} {i} matches {count} places; include more context to make it unique")
        lines = code.split("\n")
        spans = _loose_matches(lines, search.split("\n"))
        if len(spans) != 1:
            first = search.strip().splitlines()[0][:80] if search.strip() else "(empty)"
            if spans:
                raise EditError(f"{what} {i} matches {len(spans)} places; include more context to make it unique")
            raise EditError(f"{what} {i} does not match the current code (first line: {first!r}); copy the lines "
                            f"to replace verbatim from the current solution")
        a, b = spans[0]
        first_search = next(s for s in search.split("\n") if s.strip())
        new = _reindent(replace.split("\n"), _indent(lines[a]) - _indent(first_search))
        code = "\n".join(lines[:a] + new + lines[b:])
        notes.append(f"{what} {i} matched only after ignoring whitespace (indentation/trailing spaces/blank "
                     f"lines) at line {a + 1}")
    return code, notes


def parse_answer(answer: str, parent_code: str, langs: set[str], defines: Callable[[str], bool],
                 need: str) -> tuple[str, str, list[str]]:
    """(code, edit kind, notes) from an answer: SEARCH/REPLACE blocks, else the last complete
    file that `defines` accepts, else unified-diff hunks, else the whole answer when it is bare
    code. `need` names what a file must define, for the error message."""
    text = strip_reasoning(answer.replace("\r\n", "\n"))
    blocks = search_replace_blocks(text)
    if blocks:
        code, notes = apply_blocks(parent_code, blocks)
        return code, "search/replace", notes
    whole = last_file(text, langs, defines)
    if whole is not None:
        return whole, "whole file", []
    hunks = diff_blocks(text)
    if hunks:
        code, notes = apply_blocks(parent_code, hunks, "diff hunk")
        return code, "diff", notes
    if not fences(text) and defines(text) and CODE_START.match(text.strip()):
        return text.strip() + "\n", "whole file", ["the answer was bare code without a fence"]
    raise EditError(f"no code found: answer with one fenced block holding the whole file ({need}), "
                    f"or with SEARCH/REPLACE blocks against the current code")


def program_from_answer(answer: str, parent_code: str, language: str) -> tuple[str, str]:
    """A program target's rule: the last complete block in its language (or untagged) that has
    a main function (C/C++) or any code (Python), or edits; (code, kind with notes after "; ")."""
    defines = (lambda b: bool(b.strip())) if language == "python" else (lambda b: bool(MAIN.search(b)))
    code, kind, notes = parse_answer(answer, parent_code, LANGS.get(language, LANGS["cpp"]), defines,
                                     "the whole program" if language == "python" else "with its main function")
    return code, "; ".join([kind, *notes])
