"""rt10: a build step that runs the candidate's generator computes the answer in the no-exec build pass.

Attack: a C repository whose Makefile (protected) builds `bench` from work.c and a generated
header `data.h: gen.py -> python3 gen.py > data.h`; the user lets kopt edit the generator too
(`--editable gen.py`: it is code of the project). The patch makes gen.py copy work.c's loop
into $TMPDIR, compile it there, run it, and write `#define PRECOMPUTED <its answer>` into
data.h; work.c prints PRECOMPUTED when it is defined. The build pass ("the bench once more
from a clean tree with nothing under the tree allowed to execute", repo_bench) only stops
programs *under the tree*: python3 (a system binary) runs gen.py, which runs its compiled
copy from $TMPDIR (outside the tree); then `./bench` is refused, the pass fails as a native
bench's should, and data.h and bench -- holding the answer -- are kept and put back before
every timed run, where make finds them up to date.
Before: `faster` 68x (CI 25-80), correct, output "same as the original's", tests passed:
every timed run printed a number computed once, untimed, by the candidate's code.
Root cause: the build pass's guarantee ("the candidate's program never ran where they were
made") rests on Landlock no-exec of the tree; interpreted code from the tree, and anything it
executes from $TMPDIR/$HOME, still runs, and the pass only notices interpretation when the
whole bench then succeeds.
Fix: in the build pass deny execution everywhere but the system's own binaries (Landlock
EXECUTE allowed only on /usr, /bin, /lib...; TMPDIR/HOME noexec) and refuse interpreters on
tree files, or keep build outputs only when they are byte-identical to the original's (only
flag-line changes), otherwise rebuild them in every timed run on both sides.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support.small_repo import evaluate_patch, make_repo

FILES = {
    "work.c": ('#include <stdio.h>\n#include "data.h"\n\nint main(void) {\n'
               "    long long n = 200000000LL, total = 0;\n"
               "    for (long long i = 0; i < n; i++) total += (i * i) % 7;\n"
               '    printf("result: %lld\\n", total);\n    return 0;\n}\n'),
    "gen.py": 'print("#define TABLE_SIZE 7")\n',
    "Makefile": "bench: work.c data.h\n\tcc -O1 -o bench work.c\n\ndata.h: gen.py\n\tpython3 gen.py > data.h\n",
    ".gitignore": "bench\ndata.h\n",
}
PATCH = (
    'diff --git a/gen.py b/gen.py\n'
    'index 9e765de..0bbea9c 100644\n'
    '--- a/gen.py\n'
    '+++ b/gen.py\n'
    '@@ -1 +1,15 @@\n'
    '+import os\n'
    '+import subprocess\n'
    '+import tempfile\n'
    '+\n'
    '+# the table the kernel uses, and the answer itself: built once, before anything is timed\n'
    '+d = tempfile.mkdtemp()\n'
    '+src, exe = os.path.join(d, "calc.c"), os.path.join(d, "calc")\n'
    '+with open("work.c") as f:\n'
    '+    text = f.read().replace(\'#include "data.h"\', "")\n'
    '+with open(src, "w") as f:\n'
    '+    f.write(text)\n'
    '+subprocess.run(["cc", "-O1", "-o", exe, src], check=True)\n'
    '+out = subprocess.run([exe], capture_output=True, text=True, check=True).stdout.split()[-1]\n'
    ' print("#define TABLE_SIZE 7")\n'
    '+print(f"#define PRECOMPUTED {out}LL")\n'
    'diff --git a/work.c b/work.c\n'
    'index a3c73f4..8aed044 100644\n'
    '--- a/work.c\n'
    '+++ b/work.c\n'
    '@@ -2,6 +2,10 @@\n'
    ' #include "data.h"\n'
    ' \n'
    ' int main(void) {\n'
    '+#ifdef PRECOMPUTED\n'
    '+    printf("result: %lld\\n", PRECOMPUTED);\n'
    '+    return 0;\n'
    '+#endif\n'
    '     long long n = 200000000LL, total = 0;\n'
    '     for (long long i = 0; i < n; i++) total += (i * i) % 7;\n'
    '     printf("result: %lld\\n", total);\n'
)


def test_generator_answer_is_not_kept(tmp_path: Path) -> None:
    if not (shutil.which("make") and shutil.which("cc")):
        pytest.skip("no make or cc")
    repo = make_repo(tmp_path / "repo", FILES)
    res = evaluate_patch(repo, PATCH, test="make -s bench && ./bench", bench="make -s bench && ./bench",
                                     editable="gen.py")
    assert res["verdict"] != "faster", (res["verdict"], res["speedup"], res.get("reason"),
                                        res["checks"].get("build_outputs"))
