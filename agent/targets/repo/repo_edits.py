"""A model's answer as a repository candidate: its edits (SEARCH/REPLACE blocks headed by file
paths, a unified diff, or whole files) applied to the parent's tree, committed, and returned as
the new patch against HEAD -- refused when it changes more than the code under optimization."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from kopt.agent.proposers.prompting.edits import EditError
from kopt.agent.targets.repo import patches, safefs, worktree
from kopt.agent.targets.repo.hotspots import RepoIndex


def patch_from_answer(ws: worktree.Workspace, answer: str, parent_code: str, hot_files: list[str],
                      not_allowed: Callable[[Path], str | None], rules: str) -> tuple[str, str]:
    """(new patch, edit kind) from ANSWER applied on PARENT_CODE's tree in WS. A path-less block
    edits the one file that holds its text (HOT_FILES first); NOT_ALLOWED says why a tree changes
    too much (None when it does not), RULES is what may change, for the model. Raises EditError."""
    edits = patches.parse_edits(answer)
    diff = None if edits else patches.parse_diff(answer)
    if not edits and diff is None:
        edits = [patches.FileEdit(path, "", text, whole=True) for path, text in patches.parse_whole_files(answer)]
    if not edits and diff is None:
        raise EditError("no edit found. " + patches.FORMAT_HELP)
    kind = "diff" if diff is not None else "whole file" if edits[0].whole else "search/replace"

    def write(tree: Path) -> None:
        if edits:
            patches.apply_edits(tree, edits, lambda search, i: _resolve(tree, hot_files, search, i))
            return
        try:
            worktree.apply_patch(tree, diff, recount=True)
        except worktree.GitError as e:
            raise EditError(f"the diff does not apply to the current files: {e}") from None

    try:
        new = ws.derive(parent_code, write)
    except worktree.GitError as e:
        raise EditError(f"the parent candidate could not be checked out: {e}") from None
    if new == parent_code:
        raise EditError("the answer changes nothing")
    if problem := not_allowed(ws.tree_for(new)):
        raise EditError(f"not applied: {problem}. {rules}")
    return new, kind


def _resolve(tree: Path, hot_files: list[str], search: str, i: int) -> str:
    """The file a path-less block edits: the one file (hot files first) that holds its text once."""
    text = search if search.endswith("\n") else search + "\n"
    for group in (hot_files, RepoIndex(tree).files):
        hits = [f for f in group if safefs.is_regular(tree, f)
                and safefs.read_text(tree, f, errors="replace").count(text) == 1]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            break
    raise EditError(f"block {i} names no file and its SEARCH text does not identify one; put the file's path "
                    f"on the line before <<<<<<< SEARCH")
