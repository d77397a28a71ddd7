"""[target] is the target kind's own options (ProgramOptions | RepoOptions, none for a KernelBench
task): an option of another kind is one line naming it, config.json keeps only what was set, and
an older run dir's config.json (every kind's keys, unset ones as null/false) still loads."""
from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from kopt.agent.cli.app import app
from kopt.agent.errors import UserInputError
from kopt.agent.search.optimize_config import ProgramOptions, RepoOptions, from_sections

PROGRAM = Path(__file__).parents[1] / "fixtures" / "programs" / "quicksort" / "prog.cpp"
OLD_TARGET = {"tests": None, "validator": None, "checker": None, "std": None, "stress": None, "test": "make test",
              "bench": "make bench", "bench_metric": None, "higher_is_better": False, "focus": None,
              "branch": False, "include_dirty": False, "editable": None}


def test_the_keys_given_choose_the_kind_and_config_json_keeps_only_them():
    cfg = from_sections({"target": {"tests": "t", "checker": "tokens"}})
    assert isinstance(cfg.target, ProgramOptions) and cfg.target.tests == "t"
    assert cfg.sections()["target"] == {"tests": "t", "checker": "tokens"}
    assert cfg.target_options()["checker"] == "tokens" and "test" not in cfg.target_options()
    cfg = from_sections({"run": {"kind": "repo"}, "target": {"test": "make test", "branch": True}})
    assert isinstance(cfg.target, RepoOptions) and cfg.target.branch
    assert from_sections({}).target is None and from_sections({}).target_options() == {}
    assert from_sections({"run": {"kind": "kernelbench"}, "target": {}}).target is None


@pytest.mark.parametrize("sections,words", [
    ({"run": {"kind": "program"}, "target": {"test": "make test"}}, ["test (--test)", "program target", "tests"]),
    ({"run": {"kind": "repo"}, "target": {"validator": "v.cpp"}}, ["validator (--validator)", "repo target"]),
    ({"run": {"kind": "kernelbench"}, "target": {"tests": "t"}}, ["tests (--tests)", "KernelBench task takes none"]),
    ({"target": {"tests": "t", "bench": "make bench"}}, ["mixes", "(tests)", "(bench)"]),
    ({"target": {"bogus": 1}}, ["unknown key 'bogus' in [target]"]),
])
def test_an_option_of_another_kind_is_one_line_naming_it(sections, words):
    with pytest.raises(UserInputError) as e:
        from_sections(sections, "--config k.toml")
    line = str(e.value)
    assert "\n" not in line and line.startswith("--config k.toml: "), line
    for w in words:
        assert w in line, (w, line)


def test_an_older_run_dirs_config_json_still_loads():
    cfg = from_sections({"target": OLD_TARGET})
    assert isinstance(cfg.target, RepoOptions) and (cfg.target.test, cfg.target.bench) == ("make test", "make bench")
    assert cfg.sections()["target"] == {"test": "make test", "bench": "make bench"}


def test_the_cli_refuses_a_repo_flag_for_a_program_target_before_any_work(tmp_path):
    r = CliRunner().invoke(app, ["optimize", str(PROGRAM), "--kind", "program", "--test", "make test",
                                 "--run-dir", str(tmp_path / "run")])
    assert r.exit_code == 2 and r.output.startswith("kopt: ") and r.output.count("\n") == 1, r.output
    assert "--test" in r.output and "program target" in r.output
    assert not (tmp_path / "run").exists()
