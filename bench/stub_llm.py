"""A benchmark fixture: an OpenAI-compatible chat server on 127.0.0.1 that answers
instantly with a valid cited answer, so measurements show Newsdesk's own overhead.

It is not a model. It copies the first sentence of passage 1 from the prompt it gets
and returns it as a quote, which Newsdesk then verifies like any real answer.

    python -m bench.stub_llm --port 8811
"""

from __future__ import annotations

import argparse
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_PASSAGE = re.compile(r"<<<PASSAGE (\d+) (\w+)>>>\n(?:[^\n]*\n){3}\n(.*?)\n<<<END \2>>>", re.S)
_SENTENCE = re.compile(r"(.+?[.!?])(?:\s|$)", re.S)


def cited_answer(user_prompt: str) -> dict:
    match = _PASSAGE.search(user_prompt)
    if not match:
        return {"refused": True, "claims": []}
    passage, text = int(match.group(1)), match.group(3).strip()
    first = _SENTENCE.match(text)
    quote = (first.group(1) if first else text)[:400]
    return {
        "refused": False,
        "claims": [
            {"text": "The sources report this.", "quotes": [{"passage": passage, "quote": quote}]}
        ],
    }


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out as separate writes; with Nagle on, delayed ACKs add ~40 ms.
    disable_nagle_algorithm = True

    def log_message(self, *_args: object) -> None:  # quiet
        pass

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path.rstrip("/").endswith("/models"):
            self._send(200, {"object": "list", "data": [{"id": "stub", "object": "model"}]})
        else:
            self._send(404, {"error": {"message": "not found"}})

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("content-length") or 0)
        request = json.loads(self.rfile.read(length) or b"{}")
        messages = request.get("messages") or []
        user = next(
            (m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), ""
        )
        if "standalone" in json.dumps(request.get("response_format") or {}):
            content = {"question": user.rsplit("Last message:", 1)[-1].strip()}
        else:
            content = cited_answer(user)
        self._send(
            200,
            {
                "id": "chatcmpl-stub",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": "stub",
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": json.dumps(content)},
                    }
                ],
                "usage": {
                    "prompt_tokens": len(user) // 4,
                    "completion_tokens": 40,
                    "total_tokens": len(user) // 4 + 40,
                },
            },
        )


class StubLLM:
    """Run the stub in a background thread: ``with StubLLM() as url: ...``."""

    def __init__(self, port: int = 0) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> str:
        self.thread.start()
        return self.url

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8811)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"stub LLM on http://127.0.0.1:{args.port}/v1", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
