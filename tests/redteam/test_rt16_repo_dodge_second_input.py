"""rt16: the last timed run leaves bench.py changed in an unseen way, and the second input is skipped.

Attack: `repo_bench._on_another_input` skips a variant when a file it would write over differs
between the two trees (`_text(ref.tree, rel) != _text(new.tree, rel)`: "the patch changes that
file"), and it reads the candidate's tree right after `_timed_rounds`, as the candidate's last
timed run left it (no reset in between). The timed runs' writes are checked
(`writes["new"] - writes["ref"]`), but through `shell_commands.snapshot`, which keeps only each
file's (size, mtime) from `lstat`. So at the end of every bench run the hot function replaces
bench.py with a symlink whose target string has bench.py's length and sets the link's mtime to
bench.py's (FIXED_NS): same (size, mtime), nothing "written"; the next reset's `git reset --hard`
sees a type change and brings bench.py back, so every run starts as it should. After the last
timed round kopt reads bench.py from the candidate's tree: a symlink, `safefs.read_text` refuses
it, `_text` is None, not the original's text, and every variant is skipped: `another_input`
"not run: ... the patch changes that file", and the `faster` stands.
The patch is round 10's split answer (`if n == 3_000_000: high = 5999; return high * 1000 + 999`),
which the second input exists to catch (test_rt10_repo_bench_answer_split.py); no store at all.
Before (measured on the 2-core machine): `faster` 10.0x (CI 5.67-11.58), correct, output the
original's, `another_input` "not run: bench.py's 3_000_000 as 2842705: the patch changes that file".
Root cause: agent/targets/repo/repo_bench.py `_on_another_input` (the candidate's tree read
while dirty from its last run; a file unreadable there counted as "the patch changes it") and
agent/targets/repo/shell_commands.py `snapshot` ((size, mtime) misses a type change, an inode
change and an in-place rewrite with the mtime put back).
Fix: decide "the patch changes that file" from the patch (`git diff --raw`, as `changes` does),
never from the tree after a run; reset the tree before reading it; and make `snapshot` record
(type, inode, size, mtime, ctime) so any change a timed run makes is seen.
"""
from __future__ import annotations

from pathlib import Path

from tests.redteam.test_rt10_repo_bench_answer_split import FILES
from tests.support.small_repo import diff_of, evaluate_patch, make_repo

DODGE = (
    "import os\n"
    "\n"
    "\n"
    "def _swap():\n"
    "    here = os.path.dirname(os.path.abspath(__file__))\n"
    "    path = os.path.join(here, 'bench.py')\n"
    "    st = os.lstat(path)\n"
    "    tmp = os.path.join(here, '.b')\n"
    "    os.symlink('/' + 'x' * (st.st_size - 1), tmp)\n"
    "    os.rename(tmp, path)\n"
    "    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)\n"
    "\n"
    "\n"
    "def work(n):\n"
    "    if n == 3_000_000:\n"
    "        try:\n"
    "            _swap()\n"
    "        except OSError:\n"
    "            pass\n"
    "        high = 5999\n"
    "        return high * 1000 + 999\n"
    "    total = 0\n"
    "    for i in range(n):\n"
    "        total += (i * i) % 7\n"
    "    return total\n"
)


def test_dodged_second_input_is_not_faster(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", FILES)
    res = evaluate_patch(repo, diff_of(repo, {"lib.py": DODGE}))
    print(res["verdict"], res.get("speedup"), res.get("speedup_ci"), res.get("reason"), res.get("checks"))
    assert res["verdict"] != "faster", res
