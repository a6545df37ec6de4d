"""Loopback stand-ins for the Databricks REST API, the one boundary these tests cannot cross (no
workspace is reachable here): a JSON request handler to subclass, and a server for it."""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator


class JsonHandler(BaseHTTPRequestHandler):
    """Answers in JSON; every answer names the workspace id, as Databricks' do."""

    def log_message(self, *args) -> None:
        pass

    def _reply(self, status: int, document: dict) -> None:
        body = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Databricks-Org-Id", "1234567890")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _not_found(self, path: str) -> None:
        self._reply(404, {"error_code": "ENDPOINT_NOT_FOUND", "message": f"No API found for {path}"})


@contextmanager
def serving(handler: type[JsonHandler]) -> Iterator[str]:
    """``handler`` on a free loopback port for the block; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
