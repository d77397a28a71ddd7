"""Red team 34 (honest candidate): a new module inside a package named like a standard-library or
installed module is refused although nothing can import it in that module's place.

`guard.Policy.allowed` asks `guard.shadows(path)` of every new file before it looks at where the
file can be imported from: `shadows` takes the file's own name (`lib/kernels.py` -> `kernels`,
`lib/types.py` -> `types`) and refuses it when the standard library or any installed package
(this venv has one called `kernels`) has that top-level name. `lib/` is a package (`__init__.py`)
and no command puts `lib/` itself on sys.path (`guard.import_roots`: top, `src/`, script folders,
pytest's basedirs), so the new file is only ever `lib.kernels` / `lib.types`: it stands in for
nothing (red team 31 already made the tree's own module names depend on `import_roots`; red team
10's `unittest.py` lay in a folder on the path). The honest patch moves `total`'s closed form into
a helper module next to it (a routine refactor: `kernels.py`, `types.py`).

Observed before: `rejected` ("lib/kernels.py would be imported in place of the installed module
'kernels'"; "... the standard library's module 'types'").
Should be: `faster`, correct (only a new file in a folder on a command's sys.path -- `import_roots`
-- can stand in for a stdlib or installed module).
"""
from __future__ import annotations

import importlib.util

import pytest

from tests.redteam._work_repo import PY, WORK, judge

FILES = {
    "lib/__init__.py": "",
    "lib/work.py": WORK,
    "tests/test_work.py": ("from lib.work import total\n\n\ndef test_total():\n"
                           "    assert total(1000) == sum((i * i) % 7 for i in range(1000))\n"),
    "bench.py": "from lib.work import total\nprint('result', total(3_000_000))\n",
}
HELPER = "def closed_form(n):\n    q, r = divmod(n, 7)\n    return 14 * q + sum((i * i) % 7 for i in range(r))\n"


@pytest.mark.parametrize("name", ["types", "kernels"])
def test_an_honest_helper_module_in_a_package_is_not_refused(tmp_path, name):
    if name != "types" and importlib.util.find_spec(name) is None:
        pytest.skip(f"no installed module {name!r} here")
    changed = {f"lib/{name}.py": HELPER,
               "lib/work.py": f"from lib.{name} import closed_form\n\n\ndef total(n):\n    return closed_form(n)\n"}
    res = judge(tmp_path, FILES, changed, "lib/work.py:total", test=f"{PY} -m pytest -q tests")
    assert res["correct"] and res["verdict"] == "faster", res
