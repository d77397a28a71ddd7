"""Every sub-package on disk is listed in pyproject's explicit package list (so a regular,
non-editable install ships it), and each maps into the `kopt` namespace."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

if sys.version_info < (3, 11):
    pytest.skip("tomllib needs Python 3.11", allow_module_level=True)
import tomllib  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


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


def make_install_lines(tmp_path, path_prefix: str = "", index_up: str = "up") -> list[str]:
    """The commands `make install` would run for a fresh venv (make -n), with PATH as given and
    the CPU index taken as reachable or not (no network needed)."""
    import os
    import shutil
    import subprocess

    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    env = {**os.environ, "PATH": f"{path_prefix}{os.environ['PATH']}"}
    p = subprocess.run(["make", "-n", "-B", "install", f"VENV={tmp_path / 'venv'}", f"CPU_INDEX_UP={index_up}"],
                       cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return [line for line in p.stdout.splitlines() if "pip install" in line and "torch" in line]


def test_torch_is_pinned_once_in_the_makefile():
    text = (ROOT / "Makefile").read_text()
    pins = [line for line in text.splitlines() if line.startswith("TORCH_VERSION")]
    assert len(pins) == 1
    assert text.count("torch==") == 1 and "torch==$(TORCH_VERSION)" in text
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert "torch==" not in pyproject  # the extra stays a range; the pin is the Makefile's


def test_cpu_build_without_a_gpu_default_build_with_one(tmp_path):
    cpu = make_install_lines(tmp_path)
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "nvidia-smi").write_text("#!/bin/sh\necho 'GPU 0: fake'\n")
    (fake / "nvidia-smi").chmod(0o755)
    import shutil

    if shutil.which("nvidia-smi") is None:
        assert len(cpu) == 1 and "--extra-index-url https://download.pytorch.org/whl/cpu" in cpu[0]
    gpu = make_install_lines(tmp_path, f"{fake}:")
    assert len(gpu) == 1 and "--extra-index-url" not in gpu[0] and "--index-url" not in gpu[0]
    if shutil.which("nvidia-smi") is None:  # offline: the configured index or cache, no retries on the CPU one
        offline = make_install_lines(tmp_path, index_up="")
        assert len(offline) == 1 and "--extra-index-url" not in offline[0] and "torch==" in offline[0]


def test_installed_torch_is_the_pinned_version():
    import re
    from importlib.metadata import PackageNotFoundError, version

    try:
        installed = version("torch")
    except PackageNotFoundError:
        pytest.skip("torch is not installed")
    pin = re.search(r"^TORCH_VERSION \?= (\S+)", (ROOT / "Makefile").read_text(), re.M).group(1)
    assert installed.split("+")[0] == pin, (installed, pin)
