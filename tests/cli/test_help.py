"""Every `kopt ... --help` renders (commands found by walking the app, so a new command is
covered without editing this file), choice flags refuse bad values in one line, `--version`."""
from __future__ import annotations

import pytest
import typer

from kopt.agent.cli.app import app
from tests.support.cli import kopt_here as kopt  # the script's entry point, in this process


def command_paths(group=None, prefix: tuple = ()) -> list[tuple[str, ...]]:
    """Every command and sub-command of the app, as the words that invoke it."""
    group = group or typer.main.get_command(app)
    out = []
    for name, cmd in getattr(group, "commands", {}).items():
        out.append((*prefix, name))
        out += command_paths(cmd, (*prefix, name))
    return out


def test_the_walk_finds_the_nested_commands():
    paths = command_paths()
    for expected in [("optimize",), ("runs", "export"), ("skills", "mine"), ("train",), ("bench",)]:
        assert expected in paths, paths
    assert len(paths) >= 15


def test_every_help_renders():
    paths = [(), *command_paths()]
    results = [(p, kopt(*p, "--help")) for p in paths]
    bad = [(" ".join(p), r.returncode, (r.stderr or r.stdout)[-300:]) for p, r in results
           if r.returncode != 0 or "Traceback" in r.stdout + r.stderr or "Usage:" not in r.stdout]
    assert not bad, bad


def test_optimize_help_shows_the_tests_text_and_the_choices():
    p = kopt("optimize", "--help")
    assert p.returncode == 0, p.stderr
    text = " ".join(p.stdout.split())
    assert "NAME.in [/ NAME.out]" in text  # once read as rich markup, and a crash
    assert "cpu|cuda" in text and "local|ray" in text and "local|docker" in text and "auto|none" in text


@pytest.mark.parametrize("args,flag", [
    (("eval", "t.py", "s.py", "--device", "gpu"), "--device"),
    (("optimize", "t.py", "--executor", "slurm"), "--executor"),
    (("optimize", "t.py", "--sandbox", "podman"), "--sandbox"),
    (("bench", "suite", "--fit", "some"), "--fit"),
    (("train", "--advantage", "mean"), "--advantage"),
    (("runs", "export", "r", "--format", "csv"), "--format"),
    (("optimize", "t.py", "--no-such-flag"), "--no-such-flag"),
])
def test_a_bad_choice_exits_2_in_one_line(args, flag):
    p = kopt(*args)
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert len(p.stderr.strip().splitlines()) == 1 and p.stderr.startswith("kopt: ") and flag in p.stderr
    assert "Traceback" not in p.stderr and p.stdout == ""


def test_renamed_train_flags_point_to_the_new_names(tmp_path):
    for old, new in (("--budget", "--rollout-budget"), ("--out", "--run-dir")):
        p = kopt("train", "--model", "hf:x", "--tasks", str(tmp_path), old, "fixed" if old == "--budget" else "o")
        assert p.returncode == 2 and new in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr


def test_version_and_completion():
    from importlib.metadata import version

    p = kopt("--version")
    assert p.returncode == 0 and p.stdout.strip() == f"kopt {version('kopt')}"
    p = kopt("--help")
    assert "--install-completion" in p.stdout and "--show-completion" in p.stdout
