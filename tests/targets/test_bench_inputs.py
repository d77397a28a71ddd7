"""Which integers of a bench are changed to run it on an input a patch cannot know
(agent/targets/repo/bench_inputs.py), on real files in a real folder."""
from __future__ import annotations

import os
import re
from pathlib import Path

from kopt.agent.targets.repo.bench_inputs import changed, variants


def test_the_largest_integers_change_in_code_and_command_never_in_comments_or_strings(tmp_path: Path) -> None:
    (tmp_path / "bench.py").write_text(
        "import runner  # runs 99999999 times in the old version\n"
        "N = 3_000_000\n"
        "print('result:', runner.main(N), 'pad' * 20, 'id 12345678')\n"
        "assert N == 3_000_000\n")
    found = variants("python bench.py --repeat 100000", tmp_path)
    assert [re.sub(r"as \d+$", "as _", v.what) for v in found[1:]] == [
        "bench.py's 3_000_000 as _", "the bench command's 100000 as _", "bench.py's 20 as _"]
    size, repeat, pad = (int(v.what.rsplit(" ", 1)[1]) for v in found[1:])
    body = found[1].files["bench.py"]
    # both spellings of the size move together; the comment and the string do not move
    assert body.count(str(size)) == 2 and "3_000_000" not in body and "99999999" in body and "12345678" in body
    assert found[1].command == "python bench.py --repeat 100000"
    assert found[2].files == {} and found[2].command == f"python bench.py --repeat {repeat}"
    # first, all of them at once, each to the value its own variant has (a repeat count changed
    # alone left the size a patch special-cased as it was)
    assert found[0].what.startswith("every integer of 8 or more changed (3000000 as ")
    assert found[0].command == f"python bench.py --repeat {repeat}"
    assert found[0].files["bench.py"] == body.replace("'pad' * 20", f"'pad' * {pad}")


def test_a_changed_size_is_drawn_in_secret_just_below_with_the_other_parity() -> None:
    for v in (8, 9, 1000, 1001, 3_000_000, 2**31):
        drawn = {changed(v) for _ in range(200)}
        assert all(v - v // 5 - 1 <= new < v and new % 2 != v % 2 for new in drawn), (v, sorted(drawn)[:5])
        assert len(drawn) >= min(3, v // 10), (v, drawn)  # not one value a patch could write down


def test_python_dash_m_names_the_module_file(tmp_path: Path) -> None:
    (tmp_path / "bench.py").write_text("n = 1000000\nprint(n)\n")
    (tmp_path / "tools").mkdir()
    (tmp_path / "tools" / "__main__.py").write_text("SIZE = 4096\n")
    found = variants("python3 -m bench && python3 -m tools", tmp_path)
    assert sorted(sorted(v.files) for v in found) == [["bench.py"], ["bench.py", "tools/__main__.py"],
                                                      ["tools/__main__.py"]], found


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
    size = found[0].what.rsplit(" ", 1)[1]
    assert [(v.what, list(v.files)) for v in found] == [(f"bench.sh's 4096 as {size}", ["pkg/bench.sh"])]
    assert found[0].files["pkg/bench.sh"] == f"./run --size {size}\n"


def test_a_variant_drawn_again_changes_the_same_integers_to_new_values(tmp_path: Path) -> None:
    (tmp_path / "bench.py").write_text("N = 3_000_000\nprint(work(N), 'x' * 7, N)\n")
    first = variants("python bench.py --repeat 100000", tmp_path)[0]
    again = [first.again() for _ in range(20)]
    sizes = {int(re.search(r"N = (\d+)", v.files["bench.py"]).group(1)) for v in again}
    repeats = {int(v.command.rsplit(" ", 1)[1]) for v in again}
    # every round of the second input asks a size no earlier round asked (red team 14)
    assert len(sizes) >= 15 and all(2_400_000 <= n < 3_000_000 for n in sizes), sorted(sizes)[:5]
    assert len(repeats) >= 10 and all(80_000 <= r < 100_000 for r in repeats)
    for v in again:  # both spellings of the size move together; the small 7 never moves
        n = re.search(r"N = (\d+)", v.files["bench.py"]).group(1)
        assert v.files["bench.py"] == f"N = {n}\nprint(work(N), 'x' * 7, N)\n" and v.again is not None


def test_an_output_check_rebased_on_another_run_keeps_what_the_original_varies_in_masked() -> None:
    from kopt.agent.targets.repo.outputs import OutputCheck

    main = OutputCheck(None, "pairs: 511\ntook 12.5 ms\n")
    main.learn("pairs: 511\ntook 13.1 ms\n")  # the timing varies between the original's runs
    other = main.against("pairs: 407\ntook 9.0 ms\n")  # the original on another input
    assert other.differs("pairs: 407\ntook 4.2 ms\n") is None
    assert "pairs: 511" in (other.differs("pairs: 511\ntook 4.2 ms\n") or "")
    assert main.differs("pairs: 511\ntook 2.0 ms\n") is None  # the original's own check is unchanged


def test_a_size_spelt_as_a_whole_float_changes_and_stays_a_float(tmp_path: Path) -> None:
    (tmp_path / "bench.py").write_text("n = int(3e6)\nm = 3_000_000.0\nstep = 2.5\neps = 1e-3\nprint(work(n), m)\n")
    [v] = variants("python bench.py", tmp_path)
    body = v.files["bench.py"]
    new = re.search(r"n = int\((\d+)\.0\)", body)
    assert new and f"m = {new.group(1)}.0\n" in body and 2_400_000 <= int(new.group(1)) < 3_000_000, body
    assert "step = 2.5" in body and "eps = 1e-3" in body  # not whole numbers: not sizes
