"""Red-team attacks on `kopt stress` (issue 24): a generator line with a superscript digit
crashed it (str.isdigit says yes, int() says no); a generator that names /proc/self/fd/0 in an
#include (even under #if 0) hung kopt's own process, which read the header on the host."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kopt.agent.stress.mutators import TokenInput, is_int

KOPT = Path(sys.executable).with_name("kopt")
PROGRAM = "import sys\nprint(len(sys.stdin.read().split()))\n"
VALIDATOR = "import sys\nsys.stdin.read()\n"  # every input is legal
GEN_CPP = '#if 0\n#include "/proc/self/fd/0"\n#endif\n#include <cstdio>\nint main() { puts("3\\n1 2 3"); }\n'
GEN_SUPERSCRIPT = "print('3²')\nprint('1 2 3')\n"


def test_superscript_digits_are_not_integers():
    assert not is_int("3²") and not is_int("٣") and is_int("-12") and not is_int("-")
    parsed = TokenInput.parse("3²\n1 2 3\n".encode())  # before: ValueError from int('3²')
    assert parsed.links == [] and parsed.render() == "3²\n1 2 3\n".encode()


@pytest.fixture
def folder():
    # a world-readable folder: the jail's build cannot enter pytest's 0700 temp folders
    import shutil
    import tempfile

    d = Path(tempfile.mkdtemp(prefix="kopt-redteam-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _stress(tmp_path: Path, generator: str, name: str) -> subprocess.CompletedProcess:
    for file, text in (("prog.py", PROGRAM), ("val.py", VALIDATOR), (name, generator)):
        (tmp_path / file).write_text(text)
    # stdin is a pipe nobody writes: reading /proc/self/fd/0 on the host would block for good
    with subprocess.Popen([str(KOPT), "stress", str(tmp_path / "prog.py"), "--validator", str(tmp_path / "val.py"),
                           "--generator", str(tmp_path / name), "--budget", "2", "--max-bytes", "2000",
                           "--out", str(tmp_path / "out")], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as p:
        try:
            out, err = p.communicate(timeout=400)
        except subprocess.TimeoutExpired:
            p.kill()
            pytest.fail("kopt stress hung")
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


def test_generator_including_stdin_does_not_hang(folder):
    r = _stress(folder, GEN_CPP, "gen.cpp")
    assert r.returncode in (0, 1), r.stderr
    assert "Traceback" not in r.stderr


def test_generator_printing_superscript_digits_does_not_crash(folder):
    r = _stress(folder, GEN_SUPERSCRIPT, "gen.py")
    assert r.returncode in (0, 1, 2) and "Traceback" not in r.stderr, r.stderr
