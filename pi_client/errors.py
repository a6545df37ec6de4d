"""Exceptions of pi_client. Each message says what happened and what to do; none holds a secret."""

from __future__ import annotations


class PiError(Exception):
    """Base class of every error pi_client raises."""


class PiConfigError(PiError, ValueError):
    """A setting or argument is invalid; the message names it and what is accepted."""


class PiConnectionError(PiError):
    """The server could not be reached (DNS, refused, TLS, timeout) after the configured retries."""

    def __init__(self, url: str, cause: str, attempts: int):
        super().__init__(f"Cannot reach PI Web API at {url} after {attempts} attempt(s): {cause}")
        self.url = url
        self.cause = cause
        self.attempts = attempts


class PiHttpError(PiError):
    """The server answered with an error status; ``messages`` are its ``Errors`` texts."""

    def __init__(self, status: int, method: str, url: str, messages: list[str], attempts: int = 1):
        detail = "; ".join(messages) if messages else "no error message in the reply"
        super().__init__(f"PI Web API answered HTTP {status} to {method} {url}: {detail}"
                         + (f" (after {attempts} attempts)" if attempts > 1 else ""))
        self.status = status
        self.method = method
        self.url = url
        self.messages = messages
        self.attempts = attempts


class PiAuthError(PiHttpError):
    """401 or 403: names the identity used, the URL and the schemes the server offers."""

    def __init__(self, status: int, method: str, url: str, messages: list[str], identity: str,
                 offered: list[str]):
        super().__init__(status, method, url, messages)
        what = "refused the credentials of" if status == 401 else "denied access to"
        schemes = ", ".join(offered) if offered else "none announced"
        self.args = (f"PI Web API at {url} {what} {identity} (HTTP {status}). "
                     f"Schemes the server accepts: {schemes}."
                     + (f" Server said: {'; '.join(messages)}" if messages else ""),)
        self.identity = identity
        self.offered = offered


class PiDecodeError(PiError):
    """A reply did not have the shape the PI Web API documents."""
