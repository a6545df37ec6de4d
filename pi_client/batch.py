"""The batch controller (``POST batch``): many GET requests in one HTTP round trip.

The body is a JSON object keyed by request id, each ``{"Method", "Resource"}`` with the query in
the Resource URL; the reply (HTTP 207) has the same keys, each ``{"Status", "Headers", "Content"}``.
A sub-request that fails with a transient status is sent again on its own (in a smaller batch),
with the transport's backoff; one that keeps failing is returned with its status and the server's
messages, never dropped.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Mapping

import msgspec

from .decode import decode
from .transport import Transport, error_messages

log = logging.getLogger("pi_client")

#: Sub-request statuses worth sending again: throttling, server faults, gateways.
RETRYABLE = frozenset({429, 500, 502, 503, 504})


class _Reply(msgspec.Struct, gc=False):
    Status: int
    Headers: dict[str, Any] = {}
    Content: msgspec.Raw = msgspec.Raw(b"null")


@dataclass
class SubReply:
    """One sub-request's outcome: its status and its content (JSON, still encoded)."""

    status: int
    content: msgspec.Raw | bytes
    attempts: int = 1

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def messages(self) -> list[str]:
        """The server's error messages (``Errors``), or a description of the status."""
        found = error_messages(bytes(self.content)) if self.content else []
        return found or [f"HTTP {self.status}"]

    @property
    def error(self) -> str:
        """The status and the server's messages, as one line: what a failed stream reports."""
        return f"HTTP {self.status}: {'; '.join(self.messages())}"


def run_batch(transport: Transport, resources: Mapping[str, str]) -> dict[str, SubReply]:
    """GET every resource (path below the root, with its query) in batch requests.

    Returns a reply for every id given. Transient sub-request failures are retried up to the
    transport's ``retry.attempts``; the last failure is returned when they do not clear.
    """
    pending = dict(resources)
    results: dict[str, SubReply] = {}
    policy = transport.retry
    for attempt in range(1, policy.attempts + 1):
        body = {key: {"Method": "GET", "Resource": transport.url_for(resource)} for key, resource in pending.items()}
        replies = decode(transport.post("batch", body), dict[str, _Reply])
        retry_later: dict[str, str] = {}
        for key, resource in pending.items():
            reply = replies.get(key)
            if reply is None:
                results[key] = SubReply(502, b'{"Errors":["The batch reply had no entry for this request."]}', attempt)
                retry_later[key] = resource
                continue
            results[key] = SubReply(reply.Status, reply.Content, attempt)
            if reply.Status in RETRYABLE:
                retry_later[key] = resource
        if not retry_later or attempt == policy.attempts:
            break
        transport.stats.add(retries=len(retry_later))
        wait = policy.delay(attempt)
        log.info("%d of %d batch sub-requests failed transiently; sending them again in %.1f s",
                 len(retry_later), len(pending), wait)
        time.sleep(wait)
        pending = retry_later
    return results
