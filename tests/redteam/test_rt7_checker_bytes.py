"""Red team 7: the `exact` checker decoded outputs with errors="replace", so every byte that is
not UTF-8 became U+FFFD: a program printing 16 x 0x80 whatever its input matched a reference
printing input-dependent bytes in 0x80-0xBF (correct, same)."""
from __future__ import annotations

from kopt.agent.targets.program.program_inputs import Checker


def test_distinct_invalid_bytes_differ():
    exact = Checker.parse("exact")
    assert exact.differ(b"\x80\x9a\xbf\n", b"\x80\x80\x80\n") != ""


def test_valid_text_still_compares_by_lines():
    exact = Checker.parse("exact")
    assert exact.differ("é 1  \n2\n\n".encode(), "é 1\n2".encode()) == ""
    assert exact.differ("é 1\n".encode(), "è 1\n".encode()) != ""
