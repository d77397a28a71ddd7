"""Every target kind speaks the whole `Target` protocol (agent/core.py, architecture §3), and the
jobs act on what a target declares, not on its kind: a flag a target cannot honour is a
one-line error naming the flag and the kind, and a program's hidden-test details never reach
a model's prompt."""
from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from benchmarks.studies.repo_targets import commit_all, git_run
from kopt.agent.core import Candidate, Target
from kopt.agent.errors import UserInputError
from kopt.agent.proposers.llm_proposer import Attempt, build_messages
from kopt.agent.search.optimize import config_from_kwargs, run_optimize
from kopt.agent.targets.kernelbench.kernelbench_target import KernelBenchTarget
from kopt.agent.targets.program.program_target import ProgramTarget
from kopt.agent.targets.repo.repo_target import RepoTarget

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CAPABILITIES = ("parallel_eval", "cacheable", "plannable", "checks_in_prompt", "profiled")


def protocol_members() -> tuple[set[str], set[str]]:
    """(attributes, methods) the protocol declares."""
    methods = {n for n, v in vars(Target).items() if inspect.isfunction(v) and not n.startswith("_")}
    return set(Target.__annotations__), methods


def targets(tmp_path: Path) -> dict[str, object]:
    """One target of each kind, built without running anything."""
    prog = tmp_path / "sum.py"
    prog.write_text("print(sum(map(int, input().split())))\n")
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "lib.py").write_text("def f():\n    return 1\n")
    commit_all(repo)
    head = git_run(repo, "rev-parse", "HEAD").strip()
    return {"kernelbench": KernelBenchTarget.from_path(FIXTURES / "kb" / "relu_task.py"),
            "program": ProgramTarget(prog, prog.read_text(), "python", []),
            "repo": RepoTarget(repo, head, "true", "true")}


def test_every_kind_has_every_member_of_the_protocol(tmp_path):
    attributes, methods = protocol_members()
    assert set(CAPABILITIES) <= attributes and {"use_run_dir", "write_best", "evaluate"} <= methods
    for kind, target in targets(tmp_path).items():
        assert target.kind == kind
        missing = sorted(m for m in attributes | methods if not hasattr(target, m))
        assert missing == [], f"{kind} target lacks {missing}"
        assert all(callable(getattr(target, m)) for m in methods)
        assert all(isinstance(getattr(target, c), bool) for c in CAPABILITIES), kind


def test_only_a_kernelbench_task_runs_apart_from_kopt(tmp_path):
    # what each kind may do today; a new capability claimed by a target must be true of it
    declared = {kind: tuple(getattr(t, c) for c in CAPABILITIES) for kind, t in targets(tmp_path).items()}
    assert declared == {"kernelbench": (True,) * 5, "program": (False,) * 5, "repo": (False,) * 5}


def test_the_no_op_hooks_leave_the_run_dir_alone(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    for kind, target in targets(tmp_path).items():
        if kind == "repo":
            continue  # it keeps its work trees there and writes best.patch: tests/targets/test_repo_target.py
        target.use_run_dir(run)
        target.write_best(run, target.baseline_code())
    assert list(run.iterdir()) == []


@pytest.fixture(scope="module")
def program(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("prog")
    (root / "tests").mkdir()
    (root / "tests" / "a.in").write_text("1 2 3\n")
    (root / "sum.py").write_text("print(sum(map(int, input().split())))\n")
    return root / "sum.py", root / "tests"


def test_flags_a_program_cannot_honour_are_one_line_errors_naming_its_kind(program, tmp_path):
    prog, tests = program
    for flags in ({"jobs": 2}, {"executor": "ray"}, {"sandbox": "docker"}, {"gpus": "0"}):
        with pytest.raises(UserInputError) as e:
            run_optimize(prog, run_dir=tmp_path / "run", quiet=True, budget=1, target_options={"tests": tests},
                         **flags)
        msg = str(e.value)
        assert "--jobs" in msg and "a program target is evaluated by the local sandbox" in msg and "\n" not in msg
    cfg = config_from_kwargs(budget=1, target_options={"tests": tests})
    cfg.model = cfg.model.model_copy(update={"plan": "loop_unroll"})
    with pytest.raises(UserInputError, match="a program target is optimized without a plan") as e:
        run_optimize(prog, cfg, run_dir=tmp_path / "run2", quiet=True)
    assert "\n" not in str(e.value)
    assert not (tmp_path / "run" / "run.sqlite").exists() and not (tmp_path / "run2" / "run.sqlite").exists()


def test_a_programs_hidden_test_details_stay_out_of_the_prompt(tmp_path):
    made = targets(tmp_path)
    failed = {"verdict": "incorrect", "correct": False, "reason": "wrong on hidden test 2 (1 line differs)",
              "checks": {"detail": {"input": "tests/secret.in", "difference": "line 1: expected '42'"},
                         "mismatch": {"trial": "t", "samples": [[0, 42.0, 41.0]]}}}

    def prompt(target) -> str:
        attempt = Attempt("try", "ANSWER", [failed], kept=False, code=target.baseline_code())
        context = {"task_source": target.source, "parent": Candidate(code=target.baseline_code()), "lessons": "",
                   "attempts": [attempt], "target": target}
        return "\n".join(m["content"] for m in build_messages(context, "make it faster"))

    text = prompt(made["program"])
    assert "wrong on hidden test 2 (1 line differs)" in text
    assert "secret.in" not in text and "expected '42'" not in text and "first mismatches" not in text
    assert "first mismatches" in prompt(made["kernelbench"])  # a KernelBench mismatch is written for the model


def test_only_a_profiled_target_gets_the_profile_sections(tmp_path):
    from kopt.agent.proposers.prompting.task_context import task_context

    for kind, target in targets(tmp_path).items():
        if kind != "kernelbench":
            assert set(task_context(target)) == {"hardware"}, kind
