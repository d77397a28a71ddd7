"""kopt's import contract (architecture §2): layers point down only (cli -> jobs -> targets,
proposers, skills -> runs -> sandboxes -> core types and errors), no module-level import cycle,
kopt-internal imports at module top, modules of at most 450 lines, one module per basename.
The exception lists name who owns each exception; they can only shrink (an entry that no longer
applies fails). The last tests run the checker on small synthetic trees, so it is seen to fail."""
from __future__ import annotations

import functools
import textwrap
from pathlib import Path

from tests.architecture.contract import Contract

ROOT = Path(__file__).resolve().parents[2]

LAYERS = [
    ("kopt.agent.cli",),  # the command line
    ("kopt.agent.search", "kopt.benchmarks", "kopt.agent.stress.run", "kopt.rl_finetune"),  # the jobs
    ("kopt.agent.targets", "kopt.agent.proposers", "kopt.skills", "kopt.agent.stress"),  # what jobs combine
    ("kopt.agent.runs",),  # what a run leaves: store, config.json, reports
    ("kopt.sandboxes",),  # everything that runs untrusted code and measures it
    ("kopt.agent.core", "kopt.agent.errors", "kopt.agent"),  # core types and errors
]

LONG_MODULES = {  # module -> who owns splitting it
}

LAZY_IMPORTERS = {  # module with kopt imports inside functions -> who owns moving them to the top
}


@functools.cache
def kopt_contract() -> Contract:
    folders = ("agent", "skills", "sandboxes", "benchmarks", "rl_finetune")
    return Contract(roots={f"kopt.{d}": ROOT / d for d in folders},
                    layers=LAYERS, exclude=("kopt.benchmarks.studies", "kopt.benchmarks.examples"),
                    long_modules=LONG_MODULES, lazy_importers=LAZY_IMPORTERS)


def test_every_product_module_has_a_layer():
    c = kopt_contract()
    assert [m for m in c.modules() if c.layer(m) is None] == []


def test_layers_point_down():
    assert kopt_contract().upward() == []


def test_no_module_level_import_cycle():
    assert kopt_contract().cycles() == []


def test_kopt_imports_sit_at_module_top():
    assert kopt_contract().function_imports() == []


def test_modules_are_small():
    assert kopt_contract().too_long() == []


def test_exception_lists_only_shrink():
    assert kopt_contract().stale_exceptions() == []


def test_no_two_modules_share_a_basename():
    assert kopt_contract().same_basename() == []


def test_product_imports_no_script_or_test():
    c = kopt_contract()
    bad = [f"{i.importer}:{i.line} imports {i.imported}" for i in c.imports()
           if i.imported.startswith(("kopt.benchmarks.studies", "kopt.tests"))]
    for outside in ("tests", "benchmarks"):  # the checkout's folders, importable only from a clone
        other = Contract(roots=c.roots, layers=c.layers, internal=outside, exclude=c.exclude)
        bad += [f"{i.importer}:{i.line} imports {i.imported}" for i in other.imports()]
    assert bad == []


# -- the checker itself, on synthetic trees ------------------------------------------------------

def tree(tmp_path: Path, files: dict[str, str]) -> Contract:
    for rel, text in files.items():
        p = tmp_path / "pkg" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text))
    return Contract(roots={"kopt.pkg": tmp_path / "pkg"}, layers=[("kopt.pkg.top",), ("kopt.pkg.low",)],
                    max_lines=20)


def test_checker_sees_an_upward_import_and_a_function_import(tmp_path):
    c = tree(tmp_path, {"__init__.py": "", "top.py": "from kopt.pkg import low\n",
                        "low.py": "def f():\n    from kopt.pkg.top import g\n    return g\n"})
    assert c.upward() == ["kopt.pkg.low:2 imports kopt.pkg.top, a higher layer"]
    assert c.function_imports() == ["kopt.pkg.low:2 imports kopt.pkg.top inside a function"]
    assert c.cycles() == []  # the upward import is inside a function: Python hides that cycle


def test_checker_sees_a_cycle_through_a_package_init(tmp_path):
    c = tree(tmp_path, {"__init__.py": "", "low/__init__.py": "from kopt.pkg.low.b import x\n",
                        "low/a.py": "x = 1\n", "low/b.py": "from kopt.pkg.low.a import x\n",
                        "top.py": "from kopt.pkg.low import a\n",
                        "low/c.py": "import kopt.pkg.low.d\n", "low/d.py": "from . import c\n"})
    assert c.cycles() == [["kopt.pkg.low.c", "kopt.pkg.low.d"]]
    c = tree(tmp_path, {"low/a.py": "from kopt.pkg.low.b import y\nx = 1\n"})  # a -> b -> a
    assert ["kopt.pkg.low.a", "kopt.pkg.low.b"] in c.cycles()


def test_checker_sees_long_modules_same_basenames_and_stale_exceptions(tmp_path):
    c = tree(tmp_path, {"__init__.py": "", "top.py": "x = 1\n" * 21, "low/__init__.py": "",
                        "low/top.py": "y = 2\n"})
    assert c.too_long() == ["kopt.pkg.top: 21 lines (at most 20): split it along its jobs"]
    assert c.same_basename() == ["top.py: kopt.pkg.low.top, kopt.pkg.top"]
    c.long_modules = {"kopt.pkg.top": "x", "kopt.pkg.low.top": "y"}
    c.lazy_importers = {"kopt.pkg.top": "z"}
    assert c.too_long() == []
    assert c.stale_exceptions() == [
        "kopt.pkg.low.top: no longer over 20 lines; drop it from the long-module list",
        "kopt.pkg.top: imports nothing inside functions any more; drop it from the lazy list"]
