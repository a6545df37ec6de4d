"""HTTP(S) transport of the simulator: security, limits and injected faults around :class:`PiWebApi`.

Each limit and fault is switched by :class:`~pi_simulator.config.ServerConfig`:

* authentication (anonymous, Basic, Bearer; 401 with ``WWW-Authenticate`` otherwise) and an
  OpenID Connect client-credentials token endpoint for Bearer tokens;
* CSRF defence: POST/PUT/PATCH/DELETE without ``X-Requested-With`` are refused;
* URL length (414), request body size (413), rate limiting (429 with ``Retry-After``);
* added latency, and faults at a chosen rate: ``500``/``502``/``503``/``504``, ``reset`` (the
  connection is reset), ``stall`` (no answer for ``stall_seconds``), ``truncate`` (the body stops
  half-way).

Besides ``/piwebapi`` the server answers ``/simulator/...``: the clock, marker expiry and request
counters, for tests and benchmarks. These are not part of PI Web API.
"""

from __future__ import annotations

import base64
import collections
import json
import random
import secrets
import socket
import ssl
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

from .api import JSON, PiWebApi, Query, Reply
from .pitime import format_tick, parse_duration, parse_time

#: The Negotiate token the simulator accepts (base64 of a fixed ticket; see tests of Kerberos).
KERBEROS_TEST_TOKEN = base64.b64encode(b"simulated-kerberos-ticket").decode()
FAULTS = ("500", "502", "503", "504", "reset", "stall", "truncate")
UNSAFE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


class _Security:
    """Authentication, issued tokens and the per-client rate limit."""

    def __init__(self, api: PiWebApi):
        self.config = api.server_config
        self.tokens: dict[str, float] = {t: float("inf") for t in self.config.bearer_tokens}
        self.lock = threading.Lock()
        self.windows: dict[str, collections.deque] = collections.defaultdict(collections.deque)

    def challenge(self) -> str:
        schemes = []
        if "basic" in self.config.auth:
            schemes.append('Basic realm="PI Web API"')
        if "bearer" in self.config.auth:
            schemes.append("Bearer")
        if "kerberos" in self.config.auth or not schemes:
            schemes.append("Negotiate")
        return ", ".join(schemes)

    def authorized(self, header: str | None) -> str | None:
        """The user name, or None when the request is not allowed."""
        if not header:
            return "anonymous" if "anonymous" in self.config.auth else None
        scheme, _, credentials = header.partition(" ")
        scheme = scheme.lower()
        if scheme == "basic" and "basic" in self.config.auth:
            try:
                user, _, password = base64.b64decode(credentials).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return None
            return user if self.config.users.get(user) == password else None
        if scheme == "bearer" and "bearer" in self.config.auth:
            with self.lock:
                expiry = self.tokens.get(credentials.strip())
            return "bearer-client" if expiry is not None and expiry > time.monotonic() else None
        if scheme == "negotiate" and "kerberos" in self.config.auth:
            # No KDC here: the simulator accepts the one ticket that the tests' mocked GSSAPI context makes.
            return "PLANT\\kerberos-user" if credentials.strip() == KERBEROS_TEST_TOKEN else None
        return None

    def issue_token(self, client_id: str, client_secret: str) -> dict | None:
        if self.config.oidc_clients.get(client_id) != client_secret or not client_id:
            return None
        token = secrets.token_urlsafe(32)
        with self.lock:
            self.tokens[token] = time.monotonic() + self.config.oidc_token_lifetime
        return {"access_token": token, "token_type": "Bearer", "expires_in": self.config.oidc_token_lifetime}

    def over_rate(self, client: str) -> bool:
        limit = self.config.rate_limit
        if limit <= 0:
            return False
        now = time.monotonic()
        with self.lock:
            window = self.windows[client]
            while window and window[0] <= now - 1.0:
                window.popleft()
            if len(window) >= limit:
                return True
            window.append(now)
            return False


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Microsoft-HTTPAPI/2.0"
    sys_version = ""
    # TCP_NODELAY: the status line and headers go out in one write and the body in the next; with
    # Nagle's algorithm the body waited for the client's delayed ACK, 40 ms for every small answer.
    disable_nagle_algorithm = True
    server: "_HttpServer"

    def log_message(self, format: str, *args) -> None:  # quiet: tests and benchmarks read stdout
        if self.server.simulator.verbose:
            super().log_message(format, *args)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    # ---- the pipeline of checks -----------------------------------------------------------
    def _serve(self, method: str) -> None:
        sim = self.server.simulator
        api = sim.api
        config = api.server_config
        sim.count(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        if length > config.max_request_content_length:
            self._drain(length)
            return self._send(Reply.error(413, f"The request body is {length} bytes; the limit is "
                                               f"{config.max_request_content_length}."), close=True)
        body = self.rfile.read(length) if length else b""
        if len(self.path) > config.max_url_length:
            return self._send(Reply.error(414, f"The request URL is {len(self.path)} characters long; "
                                               f"the limit is {config.max_url_length}."))
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        if path.startswith("/simulator/"):
            return self._send(sim.admin(method, path, parts.query, body, self.headers))
        if not path.lower().startswith("/piwebapi"):
            return self._send(Reply.error(404, "Not found: the PI Web API lives under /piwebapi."))
        if sim.security.over_rate(self.client_address[0]):
            reply = Reply.error(429, "Rate limit was reached.")
            reply.headers["Retry-After"] = str(config.rate_limit_retry_after)
            return self._send(reply)
        if config.latency:
            time.sleep(config.latency)
        if not path.lower().startswith("/piwebapi/.well-known"):
            if sim.security.authorized(self.headers.get("Authorization")) is None:
                reply = Reply.error(401, "Authorization has been denied for this request.")
                reply.headers["WWW-Authenticate"] = sim.security.challenge()
                return self._send(reply)
            if config.csrf_defense and method in UNSAFE_METHODS and not self.headers.get("X-Requested-With"):
                return self._send(Reply.error(
                    400, "The request was rejected by Cross-Site Request Forgery defense: "
                         f"a {method} request needs an X-Requested-With header."))
        fault = sim.draw_fault()
        if fault in ("500", "502", "503", "504"):
            return self._send(Reply.error(int(fault), f"Injected fault: HTTP {fault}."))
        if fault == "reset":
            return self._reset()
        if fault == "stall":
            time.sleep(sim.stall_seconds)
            return self._reset()
        if path.lower().rstrip("/").endswith("/channel") and self.headers.get("Upgrade", "").lower() == "websocket":
            from .channels import serve_channel

            return serve_channel(self, api, path[len("/piwebapi"):], Query.from_url(parts.query))
        reply = api.handle(method, path[len("/piwebapi"):], Query.from_url(parts.query), body)
        self._send(reply, truncate=fault == "truncate")

    # ---- writing --------------------------------------------------------------------------
    def _send(self, reply: Reply, close: bool = False, truncate: bool = False) -> None:
        length = reply.length
        self.send_response(reply.status)
        self.send_header("Content-Type", JSON)
        self.send_header("Content-Length", str(length))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if close or truncate:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if truncate:
            self.wfile.write(reply.body()[: length // 2])
            self.wfile.flush()
            return self._reset()
        for chunk in reply.chunks:
            self.wfile.write(chunk)

    def _reset(self) -> None:
        """Close with a TCP reset (SO_LINGER 0), as a crashed proxy or server would."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass

    def _drain(self, length: int) -> None:
        remaining = length
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, 1 << 20))
            if not chunk:
                break
            remaining -= len(chunk)


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address, simulator: "SimulatorServer"):
        self.simulator = simulator
        super().__init__(address, _Handler)


class SimulatorServer:
    """A running simulator: ``with SimulatorServer(api) as server: requests.get(server.url)``."""

    def __init__(self, api: PiWebApi | None = None, host: str = "127.0.0.1", port: int = 0,
                 tls_cert: str | None = None, tls_key: str | None = None, fault_seed: int = 7,
                 stall_seconds: float = 30.0, verbose: bool = False):
        self.api = api or PiWebApi()
        self.security = _Security(self.api)
        self.verbose = verbose
        self.stall_seconds = stall_seconds
        self._faults = random.Random(fault_seed)
        self._fault_lock = threading.Lock()
        self._counts: collections.Counter = collections.Counter()
        self._httpd = _HttpServer((host, port), self)
        self.scheme = "http"
        if tls_cert:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(tls_cert, tls_key)
            self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True)
            self.scheme = "https"
        self.host, self.port = self._httpd.server_address[:2]
        self.api.base_url = f"{self.url}"
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The PI Web API root, e.g. ``http://127.0.0.1:5443/piwebapi``."""
        return f"{self.scheme}://{self.host}:{self.port}/piwebapi"

    # ---- life cycle -----------------------------------------------------------------------
    def start(self) -> "SimulatorServer":
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="pi-simulator", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._httpd.serve_forever()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self) -> "SimulatorServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- faults and counters -------------------------------------------------------------
    def draw_fault(self) -> str | None:
        config = self.api.server_config
        if config.fault_rate <= 0:
            return None
        with self._fault_lock:
            if self._faults.random() >= config.fault_rate:
                return None
            return self._faults.choice(config.faults)

    def count(self, path: str) -> None:
        with self._fault_lock:
            self._counts["requests"] += 1
            family = urlsplit(path).path.lower().split("/piwebapi/")[-1].split("/")[0]
            self._counts[f"requests:{family}"] += 1

    def counters(self) -> dict[str, int]:
        with self._fault_lock:
            return {**self._counts, "refused:maxCount": self.api.refused_counts}

    # ---- /simulator/... -----------------------------------------------------------------
    def admin(self, method: str, path: str, query: str, body: bytes, headers) -> Reply:
        clock = self.api.clock
        if path == "/simulator/clock":
            if method == "POST":
                try:
                    command = json.loads(body or b"{}")
                    if "Now" in command:
                        clock.set(parse_time(command["Now"], clock.now()))
                    if "Advance" in command:
                        clock.advance(parse_duration(command["Advance"]))
                except (ValueError, TypeError) as error:
                    return Reply.error(400, f"Expected {{\"Now\": time}} or {{\"Advance\": duration}}: {error}")
            return Reply.json({"Now": format_tick(clock.now()), "Frozen": clock.frozen})
        if path == "/simulator/markers/expire" and method == "POST":
            with self.api._marker_lock:
                expired = len(self.api._markers)
                self.api._markers.clear()
            return Reply.json({"Expired": expired})
        if path == "/simulator/counters":
            return Reply.json(self.counters())
        if path == "/simulator/identity/connect/token" and method == "POST":
            form = {k: v[-1] for k, v in parse_qs(body.decode(errors="replace")).items()}
            client_id, client_secret = form.get("client_id", ""), form.get("client_secret", "")
            auth = headers.get("Authorization", "")
            if auth.lower().startswith("basic "):
                client_id, _, client_secret = base64.b64decode(auth[6:]).decode().partition(":")
            if form.get("grant_type") != "client_credentials":
                return Reply.json({"error": "unsupported_grant_type"}, 400)
            token = self.security.issue_token(client_id, client_secret)
            return Reply.json(token) if token else Reply.json({"error": "invalid_client"}, 401)
        return Reply.error(404, f"Unknown simulator resource '{path}'.")
