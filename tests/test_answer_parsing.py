"""The answer corpus (tests/fixtures/answers/): answers written in the styles today's open and
hosted models produce, each parsed to the intended code or to the intended error."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from kopt.agent.answers import diff_blocks, fences, normalise_lang, strip_reasoning
from kopt.agent.edits import EditError, code_from_answer

HERE = Path(__file__).parent / "fixtures" / "answers"
PARENT = (HERE / "parent.py").read_text()
EXPECTED = json.loads((HERE / "expected.json").read_text())


def test_corpus_is_complete():
    answers = sorted(p.name for p in HERE.glob("*.md"))
    assert answers == sorted(EXPECTED), "every fixture has an expectation and every expectation a fixture"
    assert sum("error" not in e for e in EXPECTED.values()) >= 30


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_answer_parses_to_the_intended_code(name):
    want = EXPECTED[name]
    answer = (HERE / name).read_bytes().decode()
    if "error" in want:
        with pytest.raises(EditError, match=want["error"]):
            code_from_answer(answer, PARENT)
        return
    code, kind = code_from_answer(answer, PARENT)
    assert kind.split("; ")[0] == want["kind"]
    for text in want["has"]:
        assert text in code, f"{name}: missing {text!r} in\n{code}"
    for text in want.get("not", []):
        assert text not in code, f"{name}: {text!r} should not be in\n{code}"
    assert ("note" in want) == (";" in kind), kind
    if "note" in want:
        assert want["note"] in kind
    compile(code, name, "exec")


def test_longest_block_is_not_the_rule():
    """The draft is the longest block; the old rule (max by length) took it."""
    answer = (HERE / "14_last_block_wins_shorter.md").read_text()
    bodies = [f.body for f in fences(answer)]
    assert max(bodies, key=len) != bodies[-1]
    assert "DRAFT" not in code_from_answer(answer, PARENT)[0]


def test_fence_tags_are_normalised():
    assert {normalise_lang(t) for t in ("python", "Python", "python3", "py", "{.python}", "x.py")} == {"python"}
    assert {normalise_lang(t) for t in ("cpp", "C++", "cuda", "cu", "cxx")} == {"cpp"}
    assert normalise_lang("diff") == normalise_lang("patch") == "diff"


def test_reasoning_is_stripped_in_every_form():
    for answer in ("<think>a</think>B", "a</think>B", "<reasoning>a</reasoning>B", "◁think▷a◁/think▷B",
                   "<|channel|>analysis<|message|>a<|end|><|start|>assistant<|channel|>final<|message|>B"):
        assert strip_reasoning(answer).strip() == "B", answer
    assert strip_reasoning("B<think>never closed").strip() == "B"


def test_a_hunk_whose_context_is_missing_is_an_error():
    answer = "@@ -1 +1 @@\n-        return torch.sigmoid(x)\n+        return x\n"
    assert diff_blocks(answer) == [("        return torch.sigmoid(x)", "        return x")]
    with pytest.raises(EditError, match="diff hunk 1 does not match"):
        code_from_answer(answer, PARENT)


def test_ambiguous_loose_match_is_an_error():
    parent = PARENT + "\n\ndef f(x):\n    x = torch.relu(x)\n    return x\n"
    answer = "<<<<<<< SEARCH\nx = torch.relu(x)\n=======\nx = x\n>>>>>>> REPLACE\n"
    with pytest.raises(EditError, match="matches 2 places"):
        code_from_answer(answer, parent)
