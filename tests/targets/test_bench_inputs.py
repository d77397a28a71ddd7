"""Which integers of a bench are changed to run it on an input a patch cannot know
(agent/targets/repo/bench_inputs.py), on real files in a real folder."""
from __future__ import annotations

import os
from pathlib import Path

from kopt.agent.targets.repo.bench_inputs import changed, variants


def test_the_largest_integers_change_in_code_and_command_never_in_comments_or_strings(tmp_path: Path) -> None:
    (tmp_path / "bench.py").write_text(
        "import runner  # runs 99999999 times in the old version\n"
        "N = 3_000_000\n"
        "print('result:', runner.main(N), 'pad' * 20, 'id 12345678')\n"
        "assert N == 3_000_000\n")
    found = variants("python bench.py --repeat 100000", tmp_path)
    assert [v.what for v in found] == ["bench.py's 3_000_000 as 2624999", "the bench command's 100000 as 87499",
                                       "bench.py's 20 as 17"]
    body = found[0].files["bench.py"]
    # both spellings of the size move together; the comment and the string do not move
    assert body.count("2624999") == 2 and "99999999" in body and "12345678" in body
    assert found[0].command == "python bench.py --repeat 100000"
    assert found[1].files == {} and found[1].command == "python bench.py --repeat 87499"


def test_a_changed_size_is_near_and_of_the_other_parity() -> None:
    for v in (8, 9, 1000, 1001, 3_000_000, 2**31):
        new = changed(v)
        assert 0 < new < v and v - new <= v // 8 + 2 and new % 2 != v % 2, (v, new)


def test_files_outside_the_tree_symlinks_and_binaries_are_never_read(tmp_path: Path) -> None:
    tree, outside = tmp_path / "tree", tmp_path / "secret.py"
    tree.mkdir()
    outside.write_text("KEY = 987654321\n")
    os.symlink(outside, tree / "link.py")
    (tree / "prog").write_bytes(b"\x7fELF\xff\xfe 123456789")
    found = variants(f"python link.py ../secret.py ./prog {outside} build-2024/x", tree)
    assert found == [], found


def test_the_keys_name_files_from_the_tree_root_when_the_commands_run_in_a_subfolder(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "bench.sh").write_text("./run --size 4096\n")
    found = variants("sh bench.sh", tmp_path, subdir="pkg")
    assert [(v.what, list(v.files)) for v in found] == [("bench.sh's 4096 as 3583", ["pkg/bench.sh"])]
    assert found[0].files["pkg/bench.sh"] == "./run --size 3583\n"
