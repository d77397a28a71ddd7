"""A model's answer for a repository: SEARCH/REPLACE blocks, each headed by a file path,
or one unified diff in a ```diff fence. Edits are applied to the files of a work tree;
a block that does not apply is an error for the model, never skipped."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from kopt.agent.proposers.prompting.edits import EditError
from kopt.agent.targets.repo import safefs

BLOCK = re.compile(r"^<{5,9} SEARCH[ \t]*\n(.*?)^={5,9}[ \t]*\n(.*?)^>{5,9} REPLACE[ \t]*$", re.S | re.M)
DIFF_FENCE = re.compile(r"```(?:diff|patch)\n(.*?)```", re.S)
FENCE_LINE = re.compile(r"^\s*```[\w+-]*\s*$")
PATH_LIKE = re.compile(r"^[\w.+@-][\w./+@-]*$")

FORMAT_HELP = (
    "Answer with SEARCH/REPLACE blocks, each preceded by the file's path relative to the repository root "
    "on its own line:\n"
    "path/to/file.py\n<<<<<<< SEARCH\n(exact lines copied from the current file)\n=======\n(new lines)\n"
    ">>>>>>> REPLACE\n"
    "One block per change; several blocks and several files are fine. An empty SEARCH part creates a new "
    "file. Alternatively answer with one ```diff fence holding a unified diff against the current files, or "
    "with whole files: each file's path on its own line followed by a code fence holding its full new text.")


@dataclass
class FileEdit:
    path: str | None  # None: the answer named no file; the target resolves it from the SEARCH text
    search: str
    replace: str
    whole: bool = False  # `replace` is the file's full new text


def _path_before(text: str) -> str | None:
    """The file path a block is headed by: the last non-empty, non-fence line before it."""
    for line in reversed(text.splitlines()):
        if not line.strip() or FENCE_LINE.match(line):
            continue
        cand = line.strip().strip("`*").strip()
        cand = re.sub(r"^(?:#+\s*|//\s*)?(?:file(?:name)?|path)\s*:\s*", "", cand, flags=re.I).strip("`*: ")
        if PATH_LIKE.match(cand):
            return cand
        return None
    return None


def parse_edits(answer: str) -> list[FileEdit]:
    edits, last = [], 0
    for m in BLOCK.finditer(answer):
        search, replace = m.group(1), m.group(2)
        edits.append(FileEdit(_path_before(answer[last:m.start()]), search, replace))
        last = m.end()
    return edits


WHOLE_FENCE = re.compile(r"```[\w+-]*\n(.*?)```", re.S)


def parse_whole_files(answer: str) -> list[tuple[str, str]]:
    """(path, new content) for each code fence headed by a file path: whole-file answers."""
    out = []
    for m in WHOLE_FENCE.finditer(answer):
        opening = answer[m.start():answer.index("\n", m.start())]
        if opening.strip("`").strip() in ("diff", "patch"):
            continue
        path = _path_before(answer[:m.start()].rsplit("```", 1)[-1] if "```" in answer[:m.start()]
                            else answer[:m.start()])
        if path:
            out.append((path, m.group(1)))
    return out


def parse_diff(answer: str) -> str | None:
    fences = [f for f in DIFF_FENCE.findall(answer) if re.search(r"^(?:---|\+\+\+|@@|diff --git)", f, re.M)]
    return max(fences, key=len) if fences else None


def safe_relpath(path: str) -> str:
    """A repository-relative path that stays inside the tree, or an EditError."""
    p = PurePosixPath(path.removeprefix("./"))
    if p.is_absolute() or ".." in p.parts or not p.parts or p.parts[0] == ".git":
        raise EditError(f"file path {path!r} must be relative to the repository root and stay inside it")
    return str(p)


def apply_edits(tree: Path, edits: list[FileEdit], resolve) -> list[str]:
    """Apply the edits to the files of `tree`; returns the paths changed.
    `resolve(search)` names the file for a block whose answer gave no path."""
    changed: list[str] = []
    texts: dict[str, str | None] = {}
    for i, e in enumerate(edits, 1):
        rel = safe_relpath(e.path) if e.path else resolve(e.search, i)
        if rel not in texts:
            try:
                texts[rel] = safefs.read_text(tree, rel) if os.path.lexists(safefs.check_inside(tree, rel)) else None
            except UnicodeDecodeError:
                raise EditError(f"{rel} is not a text file; it cannot be edited with SEARCH/REPLACE") from None
            except OSError as e:
                raise EditError(f"{rel} cannot be edited: {e}") from None
        current = texts[rel]
        search = _normal(e.search)
        replace = _normal(e.replace)
        if e.whole:
            texts[rel] = replace
        elif current is None:
            if search.strip():
                raise EditError(f"block {i}: {rel} does not exist; use an empty SEARCH part to create a file, "
                                f"or give the path of an existing file")
            texts[rel] = replace
        else:
            if not search.strip():
                raise EditError(f"block {i}: empty SEARCH part for {rel}, which already exists; copy the lines "
                                f"to replace")
            count = current.count(search)
            if count == 0:
                first = search.strip().splitlines()[0][:80]
                raise EditError(f"block {i}: the SEARCH part does not match {rel} exactly (first line: {first!r}); "
                                f"copy the lines to replace verbatim from the current file")
            if count > 1:
                raise EditError(f"block {i}: the SEARCH part matches {count} places in {rel}; include more "
                                f"surrounding lines to make it unique")
            texts[rel] = current.replace(search, replace, 1)
        if rel not in changed:
            changed.append(rel)
    for rel in changed:
        text = texts[rel] or ""
        if rel.endswith(".py"):
            try:
                compile(text, rel, "exec")
            except SyntaxError as err:
                raise EditError(f"{rel} would have a syntax error at line {err.lineno}: {err.msg}") from None
            except (RecursionError, MemoryError, ValueError) as err:  # a model's code: anything (red team 10)
                raise EditError(f"{rel} cannot be compiled ({type(err).__name__}): split its long or deeply "
                                f"nested expressions") from None
        try:
            safefs.write_text(tree, rel, text)
        except OSError as e:
            raise EditError(f"{rel} cannot be written: {e}") from None
    return changed


def _normal(part: str) -> str:
    """A block's part as file text: the regex leaves its final newline on; keep exactly one."""
    return part if part.endswith("\n") or not part else part + "\n"


HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+(\d+)(?:,\d+)? @@")


def changed_lines(patch: str) -> dict[str, set[int]]:
    """The new-side line numbers each file's hunks add or delete at: where a patch changed code."""
    out: dict[str, set[int]] = {}
    path, line = None, 0
    for text in patch.splitlines():
        if text.startswith("diff --git "):
            path = None
        elif text.startswith("+++ "):
            target = text[4:].strip()
            path = target[2:] if target.startswith("b/") else None
            if path:
                out.setdefault(path, set())
        elif (m := HUNK.match(text)) and path:
            line = int(m.group(1))
        elif path and text.startswith("+"):
            out[path].add(line)
            line += 1
        elif path and text.startswith("-"):
            out[path].add(line)
        elif path and text.startswith(" "):
            line += 1
    return {p: lines for p, lines in out.items() if lines}
