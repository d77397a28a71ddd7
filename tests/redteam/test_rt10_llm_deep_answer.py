"""rt10: a model answer holding one very deep expression crashes `kopt optimize`.

Attack: an OpenAI-compatible endpoint (a stub here; any model can emit this by looping)
answers with a complete ```python block defining ModelNew plus `y = ----...1` (4000 unary minus
signs: a 4 kB line, a few hundred tokens -- within any max_tokens; ~3000 are enough).
Before: `kopt optimize TASK --model openai/stub --base-url ...` ran the reference, asked the
model once and died with a traceback, exit 1: `RecursionError: maximum recursion depth
exceeded during compilation` from prompting/edits.code_from_answer's `compile()` (the same
happens in repo patches.apply_edits' `compile()`); nothing of the answer was recorded as a
failed candidate (architecture §1: a user error is never a traceback; the search should end
or go on, never crash, on what a model says).
Root cause: code_from_answer (and patches.apply_edits) catch only SyntaxError around
compile(); RecursionError/MemoryError escape the proposer, and the loop catches only
ProposerUnavailable around propose().
Fix: catch (SyntaxError, ValueError, RecursionError, MemoryError) there and raise EditError
("the code is too deeply nested to compile"), so the model is told and asked again; and let
the loop treat any other exception from one proposal as a failed proposal, not a crash.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

TASK = Path(__file__).resolve().parents[1] / "fixtures" / "tasks" / "relu.py"
ANSWER = ("```python\nimport torch\n\n\nclass ModelNew(torch.nn.Module):\n    def forward(self, x):\n"
          "        return torch.relu(x)\n\n\ny = " + "-" * 4000 + "1\n```\n")


class _Stub(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers.get("content-length", 0)))
        body = json.dumps({"id": "rt10", "object": "chat.completion", "created": 0, "model": "stub",
                           "choices": [{"index": 0, "message": {"role": "assistant", "content": ANSWER},
                                        "finish_reason": "stop"}],
                           "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def test_deep_model_answer_does_not_crash_optimize(tmp_path: Path) -> None:
    pytest.importorskip("openai")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        run = subprocess.run([sys.executable, "-m", "kopt.agent.cli.app", "optimize", str(TASK), "--model",
                              "openai/stub", "--base-url", url, "--budget", "3", "--run-dir", str(tmp_path / "run")],
                             capture_output=True, text=True, timeout=240, env={**os.environ, "OPENAI_API_KEY": "x"})
    finally:
        server.shutdown()
    assert "Traceback" not in run.stderr + run.stdout, (run.stderr + run.stdout)[-600:]
    assert run.returncode in (0, 1), run.returncode
