"""Red team 7: the program checker `exact` decoded outputs with errors="replace", so every
invalid UTF-8 byte read as U+FFFD: a program printing 16 bytes 0x80 whatever its input matched
a reference printing 16 input-dependent bytes in 0x80-0xBF (correct, same). Distinct bytes must
stay distinct; valid text and trailing whitespace compare as before."""
from __future__ import annotations

from kopt.agent.targets.program.program_inputs import Checker


def test_distinct_invalid_bytes_differ():
    exact = Checker.parse("exact")
    assert exact.differ(bytes(range(0x80, 0x90)) + b"\n", b"\x80" * 16 + b"\n")
    assert exact.differ(b"\xff\n", b"\xfe\n")


def test_equal_bytes_and_text_still_match():
    exact = Checker.parse("exact")
    assert exact.differ(bytes(range(0x80, 0x90)) + b"\n", bytes(range(0x80, 0x90)) + b"  \n\n") == ""
    assert exact.differ("caf\u00e9 42\n".encode(), "caf\u00e9 42   \n".encode()) == ""
    assert exact.differ(b"1\n2\n", b"1\n3\n").startswith("line 2")
