"""Every sub-package on disk is listed in pyproject's explicit package list (so a regular,
non-editable install ships it), and each maps into the `kopt` namespace."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

if sys.version_info < (3, 11):
    pytest.skip("tomllib needs Python 3.11", allow_module_level=True)
import tomllib  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def test_all_subpackages_are_listed():
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(conf["packages"])
    mapping = conf["package-dir"]
    on_disk = set()
    for name, folder in mapping.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            if "fixtures" in rel.parts:
                continue
            on_disk.add(".".join([name, *rel.parts]))
    assert on_disk <= listed, f"add to [tool.setuptools] packages: {sorted(on_disk - listed)}"
    assert all(p.startswith("kopt.") for p in listed)
