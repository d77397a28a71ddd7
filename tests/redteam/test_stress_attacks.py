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
PROGRAM = ("#include <cstdio>\nint main() { int c, n = 0; while ((c = getchar()) != EOF) n += c == ' ';\n"
           "  printf(\"%d\\n\", n); }\n")
VALIDATOR = "#include <cstdio>\nint main() { while (getchar() != EOF) {} }\n"  # every input is legal
# GEN SEED SIZE prints SIZE numbers (so the size search ends at --max-bytes)
GEN_CPP = ('#if 0\n#include "/proc/self/fd/0"\n#endif\n#include <cstdio>\n#include <cstdlib>\n'
           'int main(int argc, char** argv) { int n = atoi(argv[2]); printf("%d\\n", n);\n'
           '  for (int i = 0; i < n; i++) printf("%d ", i); puts(""); }\n')
GEN_SUPERSCRIPT = "import sys\nn = int(sys.argv[2])\nprint(f'{n}²')\nprint(' '.join(map(str, range(n))))\n"


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
    for file, text in (("prog.cpp", PROGRAM), ("val.cpp", VALIDATOR), (name, generator)):
        (tmp_path / file).write_text(text)
    # stdin is a pipe kept open that nobody writes: reading /proc/self/fd/0 on the host blocks
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    with open(out, "w") as fout, open(err, "w") as ferr, subprocess.Popen(
            [str(KOPT), "stress", str(tmp_path / "prog.cpp"), "--validator", str(tmp_path / "val.cpp"),
             "--generator", str(tmp_path / name), "--budget", "2", "--max-bytes", "2000", "--out",
             str(tmp_path / "out")], stdin=subprocess.PIPE, stdout=fout, stderr=ferr) as p:
        try:
            p.wait(timeout=400)
        except subprocess.TimeoutExpired:
            p.kill()
            pytest.fail("kopt stress hung")
    out, err = out.read_text(), err.read_text()
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


def test_generator_including_stdin_does_not_hang(folder):
    r = _stress(folder, GEN_CPP, "gen.cpp")
    assert r.returncode in (0, 1), r.stderr
    assert "Traceback" not in r.stderr


def test_generator_printing_superscript_digits_does_not_crash(folder):
    r = _stress(folder, GEN_SUPERSCRIPT, "gen.py")
    assert r.returncode in (0, 1, 2) and "Traceback" not in r.stderr, r.stderr
