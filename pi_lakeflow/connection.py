"""A :class:`pi_client.PiClient` from the pipeline's settings, secrets resolved where it is made."""

from __future__ import annotations

from pi_client import Anonymous, Basic, Bearer, Kerberos, OidcClientCredentials, PiClient, RetryPolicy
from pi_client.auth import PiAuth

from .settings import Settings, resolve_secret


def authentication(settings: Settings) -> PiAuth:
    if settings.auth == "basic":
        return Basic(settings.user, resolve_secret("pi.password", settings.password))
    if settings.auth == "bearer":
        return Bearer(resolve_secret("pi.token", settings.token))
    if settings.auth == "oidc":
        return OidcClientCredentials(settings.oidc_client_id, resolve_secret("pi.oidc.secret", settings.oidc_secret),
                                     token_url=settings.oidc_token_url or None)
    if settings.auth == "kerberos":
        return Kerberos()
    return Anonymous()


def connect(settings: Settings, retry: RetryPolicy = RetryPolicy()) -> PiClient:
    """A client for the configured server; close it (or use ``with``) when done."""
    return PiClient(settings.url, authentication(settings), ca_bundle=settings.ca_bundle or None,
                    insecure_skip_tls_verify=settings.insecure_skip_tls_verify, retry=retry,
                    max_requests_per_second=settings.requests_per_second or None)
