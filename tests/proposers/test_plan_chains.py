"""A plan's later step builds on an earlier step's solution: every combination either applies
and writes a file that runs and matches the task, or is a `no-op` with its reason -- never a
file that fails at run time (upstream level-2 #27/#89's `elementwise; norm-epilogue` and #42's
`conv-global-mean; elementwise` once did, with NameErrors from helpers the second step lost;
two C++ steps were refused; a task whose forward reads a module-level value lost it)."""
from __future__ import annotations

import pytest
import torch

from kopt.agent.proposers.planning.plans import final_code, parse_plan, plan_space, render_plan, run_plan
from kopt.agent.proposers.rules.carry_over import carry_over, isolate, undefined_names
from kopt.agent.proposers.rules.registry import NoOp, apply

# a conv, an activation, a GroupNorm and a tail that reads the module's own globals (as
# upstream level2/83 does), small enough to compile and run here
CONV_NORM = '''import torch
import torch.nn as nn
import torch.nn.functional as F


class Model(nn.Module):
    def __init__(self, cin, cout, groups):
        super().__init__()
        self.conv = nn.Conv3d(cin, cout, 3)
        self.norm = nn.GroupNorm(groups, cout)

    def forward(self, x):
        x = self.conv(x)
        x = F.hardswish(x)
        x = self.norm(x)
        x = torch.clamp(x, min=low, max=high)
        x = x * 2.0
        return x


low, high = -0.5, 1.5


def get_inputs():
    return [torch.randn(2, 3, 6, 8, 8)]


def get_init_inputs():
    return [3, 8, 4]
'''


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("KOPT_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "kopt-cache"))


def _load(source: str) -> dict:
    ns: dict = {}
    exec(compile(source, "solution", "exec"), ns)  # the rules' own output for a test task, as test_rules_affine does
    return ns


def _matches_the_task(code: str) -> None:
    ref_ns, new_ns = _load(CONV_NORM), _load(code)
    torch.manual_seed(0)
    ref = ref_ns["Model"](*ref_ns["get_init_inputs"]())
    torch.manual_seed(0)
    new = new_ns["ModelNew"](*ref_ns["get_init_inputs"]())
    x = ref_ns["get_inputs"]()[0]
    with torch.no_grad():
        torch.testing.assert_close(new(x.clone()), ref(x.clone()), atol=1e-4, rtol=1e-4)


def test_every_two_step_plan_applies_cleanly_or_is_a_noop():
    """The whole plan space: no step raises, and no plan's file reads a name it never defines."""
    applied = 0
    for plan in plan_space(2):
        results = run_plan(CONV_NORM, plan)
        code = final_code(results)
        assert code is None or not undefined_names(code), (render_plan(plan), undefined_names(code))
        applied += all(r.status == "applied" for r in results) and len(results) == 2
    assert applied >= 3  # the chains below among them


@pytest.mark.parametrize("plan", ["cpu-fuse-elementwise-chain; cpu-fuse-norm-epilogue",
                                  "cpu-fuse-norm-epilogue; cpu-conv-channels-last",
                                  "cpu-conv-channels-last(fuse_tail=false); cpu-fuse-norm-epilogue"])
def test_a_second_step_builds_on_the_first_and_the_file_runs(plan):
    results = run_plan(CONV_NORM, parse_plan(plan))
    assert [r.status for r in results] == ["applied", "applied"], [r.reason for r in results]
    _matches_the_task(results[-1].code)


def test_two_cpp_steps_load_two_libraries():
    [first, second] = run_plan(CONV_NORM, parse_plan("cpu-fuse-elementwise-chain; cpu-fuse-norm-epilogue"))
    assert second.code.count("load_cpp(") == 2 and "_s1_LIB" in second.code and "\n_LIB = " in second.code


def test_a_module_level_value_the_forward_reads_is_kept():
    made = apply("cpu-conv-channels-last", CONV_NORM, {"fuse_tail": False})
    assert not isinstance(made, NoOp) and "low, high = (-0.5, 1.5)" in made.code
    assert "get_inputs" not in made.code  # only what the class reads
    _matches_the_task(made.code)


def test_without_isolation_a_second_library_is_refused_with_the_reason():
    """Applied directly to an earlier solution (no plan to tag its names), a rule whose own
    _CPP/_LIB differ is a NoOp naming the collision, not a file calling the wrong library."""
    first = apply("cpu-fuse-elementwise-chain", CONV_NORM)
    second = apply("cpu-fuse-norm-epilogue", first.code.replace("ModelNew", "Model"))
    assert isinstance(second, NoOp) and "_CPP" in second.reason and "C++ library" in second.reason


def test_isolate_renames_definitions_references_and_globals_but_not_parameters():
    code = ("_N = 2\n_P, _I = int, float\n\ndef _f(x, _N=None):\n    global _S\n    _S = _N\n    return _P(x) * 2\n\n"
            "class ModelNew:\n    def forward(self, x):\n        return _f(x) + _N\n")
    out = isolate(code, "s1")
    assert "_s1_N = 2" in out and "_s1_P, _s1_I = (int, float)" in out
    assert "def _s1_f(x, _N=None)" in out and "global _s1_S" in out and "_s1_S = _N" in out
    assert "return _s1_f(x) + _s1_N" in out and not undefined_names(out)


def test_carry_over_keeps_a_tuple_assignment_and_what_it_reads():
    source = "import ctypes\n\n_P, _I = ctypes.c_void_p, ctypes.c_int64\n_T = [_P, _I]\nk = 3\nunused = 4\n"
    code = "import ctypes\n\n\nclass ModelNew:\n    def f(self):\n        return _T, k\n"
    out, why = carry_over(source, code)
    assert why == "" and "_P, _I = (ctypes.c_void_p, ctypes.c_int64)" in out and "k = 3" in out
    assert "unused" not in out and out.index("_T = ") < out.index("class ModelNew") and not undefined_names(out)


def test_carry_over_keeps_what_changes_a_kept_name_in_its_place():
    source = ("import ctypes\n\n_LIB = load()\n_LIB.f.argtypes = [ctypes.c_float]\n_LIB.f.restype = ctypes.c_double\n"
              "_TYPES = {}\n_TYPES['x'] = 1\nother = {}\nother['y'] = 2\n")
    code = "import ctypes\n\n\nclass ModelNew:\n    def f(self):\n        return _LIB.f(1.0), _TYPES\n"
    out, why = carry_over(source, code)
    assert why == "" and "other" not in out, out
    # after the name they change, before the class: ctypes passes the float and reads the double
    assert out.index("_LIB = load()") < out.index("_LIB.f.argtypes = [ctypes.c_float]") \
        < out.index("_LIB.f.restype = ctypes.c_double") < out.index("class ModelNew")
    assert out.index("_TYPES = {}") < out.index("_TYPES['x'] = 1") < out.index("class ModelNew")


BN_TANH = '''import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.bn = nn.BatchNorm2d(c)
        self.gn = nn.GroupNorm(2, c)

    def forward(self, x):
        x = self.bn(x)
        x = torch.tanh(x)
        x = self.gn(x)
        return x * 2.0


def get_inputs():
    return [torch.randn(4, 8, 12, 12)]


def get_init_inputs():
    return [8]
'''


def test_a_step_after_a_library_whose_functions_are_typed_keeps_their_types():
    """Upstream level-2 #11: `cpu-fuse-batch-norm-train; cpu-fuse-norm-epilogue` lost the first
    step's `_BN_LIB.kopt_bn_train.argtypes`, and ctypes could not pass eps (a float)."""
    results = run_plan(BN_TANH, parse_plan("cpu-fuse-batch-norm-train; cpu-fuse-norm-epilogue"))
    assert [r.status for r in results] == ["applied", "applied"], [r.reason for r in results]
    code = results[-1].code
    assert "_s1_BN_LIB.kopt_bn_train.argtypes" in code
    ref_ns, new_ns = _load(BN_TANH), _load(code)
    torch.manual_seed(0)
    ref = ref_ns["Model"](8)
    torch.manual_seed(0)
    new = new_ns["ModelNew"](8)
    x = torch.randn(4, 8, 12, 12)
    with torch.no_grad():
        torch.testing.assert_close(new(x.clone()), ref(x.clone()), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(new.bn.running_var, ref.bn.running_var)
