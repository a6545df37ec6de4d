"""How the client proves who it is: Basic, Kerberos, Bearer, OpenID Connect client credentials, anonymous.

Every scheme is a :class:`requests.auth.AuthBase`, so the transport's session applies it to each
request (and Kerberos can answer the server's ``Negotiate`` challenge). ``identity`` is the text
that error messages show: a user or client name, never a password, token or secret. ``repr`` shows
the same.
"""

from __future__ import annotations

import threading
import time
from typing import Callable
from urllib.parse import urlsplit

import requests
from requests.auth import AuthBase, HTTPBasicAuth

from .errors import PiConfigError, PiError


class PiAuth(AuthBase):
    """Base of the schemes: a safe ``identity`` for messages, and a hook to reach the server."""

    identity = "anonymous access"

    def bind(self, base_url: str, session_factory: Callable[[], requests.Session]) -> None:
        """Called once by the transport with the PI Web API base URL and a way to make sessions
        with the same TLS settings (OpenID Connect fetches its token with one)."""

    def __call__(self, request):
        return request

    def handshake_headers(self, url: str) -> dict[str, str]:
        """The headers that authenticate a connection ``requests`` does not make: the WebSocket
        handshake of a channel to ``url``."""
        prepared = self(requests.Request("GET", url).prepare())
        found = prepared.headers.get("Authorization")
        return {"Authorization": found} if found else {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.identity})"


class Anonymous(PiAuth):
    """No credentials (the server must allow anonymous access)."""


class Basic(PiAuth):
    """HTTP Basic with a user name and password (only over HTTPS outside tests)."""

    def __init__(self, user: str, password: str):
        if not user:
            raise PiConfigError("Basic authentication needs a user name.")
        self._basic = HTTPBasicAuth(user, password)
        self.identity = f"user '{user}' (basic)"

    def __call__(self, request):
        return self._basic(request)


class _ClaimsBased(PiAuth):
    """Bearer tokens: the PI Web API accepts them on requests, not on channels."""

    def handshake_headers(self, url: str) -> dict[str, str]:
        raise PiConfigError(f"PI Web API channels do not accept {self.identity} (claims-based authentication); "
                            "open channels with basic, Kerberos or anonymous access, or read stream updates "
                            "(markers), which accept every scheme.")


class Bearer(_ClaimsBased):
    """A bearer token obtained elsewhere (claims-based authentication)."""

    def __init__(self, token: str):
        if not token:
            raise PiConfigError("Bearer authentication needs a token.")
        self._token = token
        self.identity = "a bearer token"

    def __call__(self, request):
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request


class OidcClientCredentials(_ClaimsBased):
    """OpenID Connect client-credentials grant; the token is renewed before it expires.

    The token endpoint is ``token_url`` when given, else the ``token_endpoint`` of the server's
    ``.well-known/openid-configuration``. A token is renewed once less than ``renew_margin``
    seconds (or a tenth of its lifetime, whichever is less) remain.
    """

    def __init__(self, client_id: str, client_secret: str, token_url: str | None = None,
                 scope: str | None = None, renew_margin: float = 60.0):
        if not client_id or not client_secret:
            raise PiConfigError("OpenID Connect client credentials need a client id and a client secret.")
        self.client_id = client_id
        self._secret = client_secret
        self.token_url = token_url
        self.scope = scope
        self.renew_margin = renew_margin
        self.identity = f"OpenID Connect client '{client_id}'"
        self._token: str | None = None
        self._renew_at = 0.0
        self._lock = threading.Lock()
        self._base_url: str | None = None
        self._session_factory: Callable[[], requests.Session] = requests.Session
        self.tokens_fetched = 0

    def bind(self, base_url: str, session_factory: Callable[[], requests.Session]) -> None:
        self._base_url = base_url
        self._session_factory = session_factory

    def _endpoint(self, session: requests.Session) -> str:
        if self.token_url:
            return self.token_url
        if self._base_url is None:
            raise PiConfigError("OpenID Connect needs token_url, or a PI Web API URL to discover it from.")
        url = f"{self._base_url}/.well-known/openid-configuration"
        try:
            reply = session.get(url, timeout=30, verify=session.verify)
            reply.raise_for_status()
            self.token_url = reply.json()["token_endpoint"]
        except (requests.RequestException, ValueError, KeyError) as error:
            raise PiError(f"Cannot discover the OpenID Connect token endpoint from {url}: {error}. "
                          "Give token_url explicitly.") from None
        return self.token_url

    def token(self) -> str:
        """A valid access token, fetched or renewed when needed."""
        with self._lock:
            if self._token is None or time.monotonic() >= self._renew_at:
                with self._session_factory() as session:
                    endpoint = self._endpoint(session)
                    form = {"grant_type": "client_credentials", "client_id": self.client_id,
                            "client_secret": self._secret}
                    if self.scope:
                        form["scope"] = self.scope
                    try:
                        reply = session.post(endpoint, data=form, timeout=30, verify=session.verify)
                    except requests.RequestException as error:
                        raise PiError(f"Cannot reach the token endpoint {endpoint}: {type(error).__name__}") from None
                    if reply.status_code != 200:
                        raise PiError(f"The token endpoint {endpoint} refused {self.identity} "
                                      f"(HTTP {reply.status_code}); check the client id and secret.")
                    document = reply.json()
                lifetime = float(document.get("expires_in", 3600))
                self._token = document["access_token"]
                self._renew_at = time.monotonic() + lifetime - min(self.renew_margin, lifetime / 10)
                self.tokens_fetched += 1
            return self._token

    def __call__(self, request):
        request.headers["Authorization"] = f"Bearer {self.token()}"
        return request


class Kerberos(PiAuth):
    """Kerberos (Negotiate), the PI Web API's default, through the optional ``requests-kerberos``.

    ``principal`` picks a credential from the ticket cache; ``hostname_override`` names the
    service host when the URL uses an alias. Mutual authentication is optional by default because
    many PI Web API deployments behind load balancers do not return the server token.
    """

    def __init__(self, principal: str | None = None, hostname_override: str | None = None,
                 mutual_authentication: str = "optional", delegate: bool = False):
        try:
            import requests_kerberos
        except ImportError:
            raise PiConfigError("Kerberos authentication needs the optional extra: "
                                "pip install 'pi-lakeflow[kerberos]' (and the system's krb5 libraries).") from None
        modes = {"required": requests_kerberos.REQUIRED, "optional": requests_kerberos.OPTIONAL,
                 "disabled": requests_kerberos.DISABLED}
        if mutual_authentication not in modes:
            raise PiConfigError(f"mutual_authentication '{mutual_authentication}' is not one of {', '.join(modes)}.")
        self._kerberos = requests_kerberos.HTTPKerberosAuth(
            mutual_authentication=modes[mutual_authentication], principal=principal,
            hostname_override=hostname_override, delegate=delegate)
        self.identity = f"Kerberos principal '{principal}'" if principal else "the Kerberos ticket of this process"

    def __call__(self, request):
        return self._kerberos(request)

    def handshake_headers(self, url: str) -> dict[str, str]:
        """A Negotiate token sent up front: a WebSocket handshake cannot answer a 401 challenge."""
        host = urlsplit(url).hostname
        return {"Authorization": self._kerberos.generate_request_header(None, host, is_preemptive=True)}
