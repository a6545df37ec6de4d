"""HTTP transport: one pooled session that owns the URL, TLS, authentication, timeouts, retries and
a ceiling on requests per second, and turns failures into errors a person can act on.

Retried (with exponential backoff and jitter, honouring ``Retry-After``): HTTP 429, 500, 502, 503,
504 (PI Web API and the proxies in front of it answer 500 under load), connection resets,
truncated bodies and timeouts. Everything else is raised at once: a
:class:`PiAuthError` for 401/403, a :class:`PiHttpError` for other statuses, a
:class:`PiConnectionError` when the server stays unreachable.
"""

from __future__ import annotations

import email.utils
import logging
import os
import random
import re
import ssl
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import msgspec
import requests
import urllib3
from requests.adapters import HTTPAdapter

from .auth import Anonymous, PiAuth
from .errors import PiAuthError, PiConfigError, PiConnectionError, PiDecodeError, PiHttpError

log = logging.getLogger("pi_client")

#: Sent on every request: the PI Web API's CSRF defence refuses POSTs without it.
REQUESTED_WITH = "pi-lakeflow"


class Closing:
    """A ``with`` block closes it (its ``close``) however the block ends."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry transient failures."""

    attempts: int = 6                 # tries in all, the first included
    backoff: float = 0.5              # seconds before the first retry, doubled each time
    max_backoff: float = 30.0         # ceiling of one wait (Retry-After included)
    statuses: frozenset[int] = frozenset({429, 500, 502, 503, 504})

    def __post_init__(self):
        if self.attempts < 1:
            raise PiConfigError(f"RetryPolicy.attempts must be at least 1, not {self.attempts}.")
        if self.backoff < 0 or self.max_backoff < 0:
            raise PiConfigError("RetryPolicy.backoff and max_backoff must not be negative.")

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (1-based): half fixed, half random."""
        if retry_after is not None:
            return min(retry_after, self.max_backoff)
        ceiling = min(self.max_backoff, self.backoff * 2 ** (retry - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)


@dataclass
class TransportStats:
    """Counters of one transport, for ingestion logs: attempts sent, retries, bytes received."""

    requests: int = 0
    retries: int = 0
    bytes_received: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, requests: int = 0, retries: int = 0, bytes_received: int = 0) -> None:
        with self._lock:
            self.requests += requests
            self.retries += retries
            self.bytes_received += bytes_received

    def snapshot(self) -> tuple[int, int, int]:
        with self._lock:
            return self.requests, self.retries, self.bytes_received


class RateLimiter:
    """Spaces requests so that at most ``per_second`` start in any second (shared by threads)."""

    def __init__(self, per_second: float):
        if per_second <= 0:
            raise PiConfigError(f"max_requests_per_second must be positive, not {per_second}.")
        self.interval = 1.0 / per_second
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            time.sleep(start - now)


class Transport(Closing):
    """A pooled session bound to one PI Web API.

    ``url`` is the PI Web API root, e.g. ``https://pi.example.com/piwebapi``. TLS certificates are
    always verified, against ``ca_bundle`` when given (a PEM file or directory); the only way to
    skip verification is the explicit ``insecure_skip_tls_verify=True``, which logs a warning.
    """

    def __init__(self, url: str, auth: PiAuth | None = None, *, ca_bundle: str | None = None,
                 insecure_skip_tls_verify: bool = False, connect_timeout: float = 10.0,
                 read_timeout: float = 300.0, retry: RetryPolicy = RetryPolicy(),
                 max_requests_per_second: float | None = None, pool_size: int = 8):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise PiConfigError(f"The PI Web API URL '{url}' is not valid: expected "
                                "https://host[:port]/piwebapi (or http:// for a local simulator).")
        if ca_bundle is not None and not os.path.exists(ca_bundle):
            raise PiConfigError(f"The CA bundle '{ca_bundle}' does not exist: give a PEM file or directory.")
        if not isinstance(insecure_skip_tls_verify, bool):
            raise PiConfigError("insecure_skip_tls_verify must be True or False.")
        if connect_timeout <= 0 or read_timeout <= 0:
            raise PiConfigError("connect_timeout and read_timeout must be positive seconds.")
        self.url = url.rstrip("/")
        self.auth = auth or Anonymous()
        self.retry = retry
        self.timeout = (connect_timeout, read_timeout)
        self.stats = TransportStats()
        self._verify: bool | str = ca_bundle if ca_bundle else True
        if insecure_skip_tls_verify:
            log.warning("TLS certificate verification is OFF for %s (insecure_skip_tls_verify=True).", self.url)
            self._verify = False
        self._limiter = RateLimiter(max_requests_per_second) if max_requests_per_second else None
        self._pool_size = pool_size
        self.session = self.new_session()
        self.session.auth = self.auth
        self.auth.bind(self.url, self.new_session)

    def new_session(self) -> requests.Session:
        """A session with this transport's TLS settings and headers (no authentication)."""
        session = requests.Session()
        session.verify = self._verify
        session.trust_env = True
        session.headers["X-Requested-With"] = REQUESTED_WITH
        session.headers["Accept"] = "application/json"
        adapter = HTTPAdapter(pool_connections=self._pool_size, pool_maxsize=self._pool_size, max_retries=0)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        return session

    def __repr__(self) -> str:
        return f"Transport({self.url!r}, auth={self.auth!r})"

    def close(self) -> None:
        self.session.close()

    def ssl_context(self) -> ssl.SSLContext | None:
        """TLS for connections ``requests`` does not make (channels): the same verification, or
        ``None`` for a plain ``http://`` server."""
        if not self.url.startswith("https://"):
            return None
        if self._verify is False:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context
        if isinstance(self._verify, str):
            folder = os.path.isdir(self._verify)
            return ssl.create_default_context(cafile=None if folder else self._verify,
                                              capath=self._verify if folder else None)
        return ssl.create_default_context(cafile=requests.certs.where())  # the CAs requests trusts

    def url_for(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else f"{self.url}/{path.lstrip('/')}"

    def request(self, method: str, path: str, params=None, json_body=None) -> bytes:
        """Send one request (retrying transient failures) and return the body of a 2xx reply."""
        url = self.url_for(path)
        body = msgspec.json.encode(json_body) if json_body is not None else None
        headers = {"Content-Type": "application/json"} if body is not None else None
        last_failure = ""
        for attempt in range(1, self.retry.attempts + 1):
            if attempt > 1:
                self.stats.add(retries=1)
            if self._limiter:
                self._limiter.wait()
            self.stats.add(requests=1)
            retry_after = None
            try:
                # verify is passed on each call: requests would let REQUESTS_CA_BUNDLE override the session's.
                reply = self.session.request(method, url, params=params, data=body, headers=headers,
                                             timeout=self.timeout, stream=True, verify=self._verify)
                try:
                    content = reply.raw.read(decode_content=True)
                finally:
                    reply.close()
            except (requests.ConnectionError, requests.Timeout, urllib3.exceptions.HTTPError,
                    requests.exceptions.ChunkedEncodingError) as error:
                last_failure = describe_failure(error).replace("the read timeout", f"{self.timeout[1]:g} s")
                if attempt < self.retry.attempts and not isinstance(error, requests.exceptions.SSLError):
                    wait = self.retry.delay(attempt)
                    log.info("%s %s failed (%s); retry %d in %.1f s", method, url, last_failure, attempt, wait)
                    time.sleep(wait)
                    continue
                raise PiConnectionError(self.url, last_failure, attempt) from None
            self.stats.add(bytes_received=len(content))
            status = reply.status_code
            if status < 300:
                kind = reply.headers.get("Content-Type", "")
                if content and kind and "json" not in kind.lower():
                    raise PiDecodeError(f"{method} {reply.url} answered HTTP {status} with {kind.split(';')[0]}, not "
                                        f"JSON: is {self.url} the PI Web API (its URL ends in /piwebapi)? The reply "
                                        f"began: {content[:80].decode('utf-8', 'replace')!r}")
                return content
            messages = error_messages(content)
            if status in (401, 403):
                raise PiAuthError(status, method, reply.url, messages, self.auth.identity,
                                  offered_schemes(reply.headers.get("WWW-Authenticate", "")))
            if status not in self.retry.statuses or attempt == self.retry.attempts:
                raise PiHttpError(status, method, reply.url, messages, attempt)
            retry_after = parse_retry_after(reply.headers.get("Retry-After"))
            wait = self.retry.delay(attempt, retry_after)
            log.info("%s %s answered HTTP %d; retry %d in %.1f s", method, url, status, attempt, wait)
            time.sleep(wait)
        raise AssertionError("unreachable")  # the loop returns or raises

    def get(self, path: str, params=None) -> bytes:
        return self.request("GET", path, params=params)

    def post(self, path: str, json_body=None, params=None) -> bytes:
        return self.request("POST", path, params=params, json_body=json_body)


def error_messages(content: bytes) -> list[str]:
    """The ``Errors`` of a PI Web API error body, or its text when it is not that shape."""
    try:
        document = msgspec.json.decode(content)
    except msgspec.DecodeError:
        text = content[:300].decode("utf-8", "replace").strip()
        return [text] if text else []
    if isinstance(document, dict):
        errors = document.get("Errors") or document.get("Message")
        if isinstance(errors, list):
            return [str(e) for e in errors]
        if errors:
            return [str(errors)]
    return []


def offered_schemes(header: str) -> list[str]:
    """Scheme names from a ``WWW-Authenticate`` header, e.g. ``Basic realm="x", Negotiate``."""
    schemes = []
    for part in header.split(","):
        word = part.strip().split(" ", 1)[0]
        if word and "=" not in word and word not in schemes:
            schemes.append(word)
    return schemes


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds: an integer, or an HTTP date."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\")\]]+)")


def describe_failure(error: BaseException) -> str:
    """A short cause for a transport failure: 'Connection refused', 'read timed out', ..."""
    text = str(error)
    if "CERTIFICATE_VERIFY_FAILED" in text:
        found = re.search(r"certificate verify failed: ([^(')\"]+)", text)
        return "TLS certificate verification failed" + (f": {found.group(1).strip()}" if found else "") + \
            " (give the server's CA with ca_bundle)"
    if isinstance(error, requests.exceptions.SSLError):
        if re.search(r"WRONG_VERSION_NUMBER|wrong version number|record layer failure|packet length too long", text):
            return "the server does not speak TLS at this address: an https:// URL for a plain http:// server?"
        found = re.search(r"\[SSL[^\]]*\] ([^(')\"]+)", text)
        return f"TLS handshake failed: {found.group(1).strip() if found else text[:200]}"
    if isinstance(error, requests.exceptions.ConnectTimeout):
        return "connection timed out"
    if isinstance(error, requests.exceptions.ReadTimeout) or "timed out" in text:
        return "read timed out: the server accepted the connection but did not answer within the read timeout"
    found = _ERRNO.search(text)
    if found:
        return found.group(1).strip()
    if "RemoteDisconnected" in text or "Connection aborted" in text or "reset" in text.lower():
        return "connection closed by the server"
    if "IncompleteRead" in text or isinstance(error, requests.exceptions.ChunkedEncodingError):
        return "the reply body was cut short"
    return type(error).__name__
