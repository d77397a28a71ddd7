"""`kopt doctor`: what isolation, toolchains and accelerators this machine offers."""
from __future__ import annotations

import shutil
import subprocess


def _version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return "not found"
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0] if text and out.returncode == 0 else "not found"


def report() -> dict:
    from kopt.sandboxes.local import namespace_prefix

    prefix = namespace_prefix()
    info = {
        "sandbox": "local (namespaces: " + ("net+pid" if prefix else "none; rlimits only, weaker isolation") + ")",
        "user namespaces": "yes" if "--user" in prefix else ("not needed (root)" if prefix else "no"),
        "bubblewrap": shutil.which("bwrap") or "not found",
        "docker engine": "yes" if shutil.which("docker") and _version(["docker", "info", "--format",
                                                                      "{{.ServerVersion}}"]) != "not found"
        else "no",
        "g++": _version(["g++", "--version"]),
        "nvcc": _version(["nvcc", "--version"]).replace("\n", " ") if shutil.which("nvcc") else "not found",
        "valgrind": _version(["valgrind", "--version"]),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU visible"
    except ImportError:
        info["torch"] = "not installed (pip install torch)"
    return info
