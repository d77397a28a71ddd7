"""Red team 9: the folder of the script that calls kopt was shown to every candidate.

Attack: the jail binds every `sys.path` entry into a worker (read-only) as a place Python
imports from; `sys.path[0]` is the folder of the script Python was started with (or the
current folder). A user's script in $HOME (or a project folder) calling `evaluate(task, sol)`
therefore showed that whole folder -- ~/.aws, ~/.ssh, .env files -- to the solution. The
solution here reads a file beside the script and reports it in its error.

Before: `runtime_error` "LEAK RT9-DUMMY-NOT-A-SECRET" (the file's contents, read in the sandbox).
After: the script's folder and the current folder are not bound (unless inside the Python
install): FileNotFoundError in the sandbox.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

TASK = ("import torch\nimport torch.nn as nn\n\n\nclass Model(nn.Module):\n    def forward(self, x):\n"
        "        return torch.relu(x)\n\n\ndef get_inputs():\n    return [torch.randn(8, 64)]\n\n\n"
        "def get_init_inputs():\n    return []\n")
SOLUTION = ("import torch.nn as nn\n\n\nclass ModelNew(nn.Module):\n    def __init__(self):\n"
            "        super().__init__()\n        try:\n            text = open('@FILE@').read().strip()\n"
            "        except OSError as e:\n            text = type(e).__name__\n"
            "        raise RuntimeError('LEAK ' + text)\n")
SCRIPT = ("import sys\nfrom kopt.sandboxes.evaluator import evaluate\n"
          "print(evaluate(sys.argv[1], sys.argv[2])['reason'])\n")


@pytest.fixture
def user_folder():
    """A user's folder, readable by the sandbox's uid (as a home folder usually is to its owner)."""
    folder = Path(tempfile.mkdtemp(prefix="kopt-rt9-user-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_the_calling_scripts_folder_is_not_shown_to_the_candidate(user_folder: Path, tmp_path: Path):
    secret = user_folder / "dummy.txt"
    secret.write_text("RT9-DUMMY-NOT-A-SECRET\n")
    secret.chmod(0o644)
    (user_folder / "run_kopt.py").write_text(SCRIPT)
    (tmp_path / "task.py").write_text(TASK)
    (tmp_path / "sol.py").write_text(SOLUTION.replace("@FILE@", str(secret)))
    out = subprocess.run([sys.executable, str(user_folder / "run_kopt.py"), str(tmp_path / "task.py"),
                          str(tmp_path / "sol.py")], capture_output=True, text=True, timeout=600, cwd=user_folder)
    assert "LEAK" in out.stdout, out.stdout + out.stderr
    assert "RT9-DUMMY" not in out.stdout and "FileNotFoundError" in out.stdout, out.stdout
