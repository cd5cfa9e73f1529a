"""A JSON HTTP server on loopback for fakes of outside APIs (Slack's Web API, a chat-completions
endpoint): each POST's JSON body goes to ``respond``, whose (status, JSON) is the answer.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from signoff.testing import free_port

__all__ = ["JsonServer"]

Respond = Callable[[str, dict[str, str], dict[str, Any]], tuple[int, Any]]


class JsonServer:
    """Serves ``respond(path, headers, body) -> (status, answer)`` until :meth:`stop`."""

    def __init__(self, respond: Respond) -> None:
        self.port = free_port()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status, answer = respond(self.path, dict(self.headers), body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
