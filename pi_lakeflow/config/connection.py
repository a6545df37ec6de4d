"""A :class:`pi_client.PiClient` from the pipeline's settings, secrets resolved where it is made.

The server's item limit (MaxReturnedItemsPerCall) is site configuration. A client starts at the
lowest of ``pi.max_items_per_call`` and the limit an earlier client of the same pipeline learned
from a refusal; a lower limit it learns is kept in ``pi.state_path``, so that the tasks of the
next batch, the next run and the catalog do not ask too much again.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from pi_client import Anonymous, Basic, Bearer, Kerberos, Limits, OidcClientCredentials, PiClient, RetryPolicy
from pi_client.auth import PiAuth

from pi_lakeflow.config.settings import Settings, resolve_secret
from pi_lakeflow.state.files import write_whole

LIMITS_FILE = "server-limits.json"


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


@contextmanager
def connect(settings: Settings, retry: RetryPolicy = RetryPolicy(), read_timeout: float | None = None
            ) -> Iterator[PiClient]:
    """A client for the configured server, closed when the block ends; a lower item limit it
    learned is kept for the pipeline's later clients (see the module's docstring).
    ``read_timeout`` (seconds) overrides ``pi.read_timeout``."""
    start = min(settings.max_items_per_call, learned_item_limit(settings.state_path) or settings.max_items_per_call)
    client = PiClient(settings.url, authentication(settings), ca_bundle=settings.ca_bundle or None,
                      insecure_skip_tls_verify=settings.insecure_skip_tls_verify, retry=retry,
                      read_timeout=read_timeout or settings.read_timeout_s, limits=Limits(max_items_per_call=start),
                      max_requests_per_second=settings.requests_per_second or None)
    try:
        yield client
    finally:
        client.close()
        if client.limits.max_items_per_call < start:
            keep_item_limit(settings.state_path, client.limits.max_items_per_call)


def learned_item_limit(state_path: str) -> int | None:
    """The item limit a client of this pipeline learned, if any."""
    try:
        return int(json.loads((Path(state_path) / LIMITS_FILE).read_text())["max_items_per_call"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def keep_item_limit(state_path: str, limit: int) -> None:
    """Keep ``limit`` unless a lower one is kept already (written whole: a temporary file renamed)."""
    kept = learned_item_limit(state_path)
    if kept is not None and kept <= limit:
        return
    write_whole(Path(state_path) / LIMITS_FILE, json.dumps({"max_items_per_call": limit}).encode())
