"""A scripted OpenAI-compatible chat server on 127.0.0.1, for runs that must exercise the
LLM path without an LLM (the GPU acceptance run's `kopt optimize` row). It answers
`POST .../chat/completions` with `answer(request_json, n)` for the n-th request; it lives
in the product (not in tests/) so an installed kopt can run the acceptance script."""
from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class LoopbackChat:
    """`with LoopbackChat(answer) as srv:` then point a client at `srv.url`."""

    def __init__(self, answer: Callable[[dict, int], str]):
        self.answer, self.requests = answer, []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer._lock:
                    outer.requests.append(body)
                    n = len(outer.requests)
                text = outer.answer(body, n)
                prompt = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
                data = json.dumps({
                    "id": f"loopback-{n}", "object": "chat.completion", "created": 0, "model": body.get("model"),
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": text}}],
                    "usage": {"prompt_tokens": prompt, "completion_tokens": len(text.split()),
                              "total_tokens": prompt + len(text.split())}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> LoopbackChat:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
