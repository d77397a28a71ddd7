"""The answer corpus (tests/fixtures/answers/): answers written in the styles today's open and
hosted models produce, each parsed to the intended code or to the intended error."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from kopt.agent.proposers.prompting.answers import diff_blocks, fences, normalise_lang, strip_reasoning
from kopt.agent.proposers.prompting.edits import EditError, code_from_answer

HERE = Path(__file__).parents[1] / "fixtures" / "answers"
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


def test_program_answers_take_the_last_complete_file_with_main():
    from kopt.agent.proposers.prompting.answers import program_from_answer

    parent = "#include <cstdio>\nint main() {\n    int n; scanf(\"%d\", &n);\n    printf(\"%d\\n\", n);\n}\n"
    answer = ("<think>\n```cpp\nint main() { return 1; } // DRAFT\n```\n</think>\nThe helper:\n"
              "```c++\nstatic int twice(int x) { return 2 * x; }\n```\nThe program:\n"
              "```C++\n#include <cstdio>\nint main() { int n; scanf(\"%d\", &n); printf(\"%d\\n\", n); }"
              " // FINAL\n```\n")
    code, kind = program_from_answer(answer, parent, "cpp")
    assert "FINAL" in code and "DRAFT" not in code and kind == "whole file"
    drift = "<<<<<<< SEARCH\n  printf(\"%d\\n\", n);  \n=======\n  puts(\"x\");\n>>>>>>> REPLACE\n"
    code, kind = program_from_answer(drift, parent, "cpp")
    assert "    puts(\"x\");" in code and "ignoring whitespace" in kind
    with pytest.raises(EditError, match="no code found"):
        program_from_answer("I would read faster with getchar.", parent, "python")
