"""``PiClient``: a transport plus the server limits that shape requests.

Every reading function of pi_client takes a client as its first argument::

    with PiClient("https://pi.example.com/piwebapi", auth=Basic("user", password)) as client:
        points = find_points(client, name_filter="*TEMP*")
        result = read_recorded(client, tags, start="2024-05-01T00:00:00Z", end="2024-05-02T00:00:00Z")
"""

from __future__ import annotations

import re
from urllib.parse import quote
from dataclasses import dataclass

from .auth import PiAuth
from .batch import SubReply, run_batch
from .decode import SystemStatus, decode, gc_paused
from .errors import PiConfigError
from .times import to_ns
from .transport import Closing, RetryPolicy, Transport


@dataclass
class Limits:
    """Request sizing. ``max_items_per_call`` is the server's MaxReturnedItemsPerCall (PI Web API
    default 150,000); when the server refuses a count as too large, the client lowers it to what
    the server names and asks again."""

    max_items_per_call: int = 150_000
    tags_per_request: int = 100      # streams per streamsets sub-request (fewer if the URL gets long)
    requests_per_batch: int = 50     # sub-requests per batch POST
    max_url_length: int = 16_000     # PI Web API (IIS) refuses longer URLs with 414
    page_size: int = 10_000          # maxCount of list requests (points, elements, event frames)
    values_per_batch: int = 1_500_000  # values one batch POST may return at most (bounds memory)

    def __post_init__(self):
        for name in ("max_items_per_call", "tags_per_request", "requests_per_batch", "max_url_length", "page_size",
                     "values_per_batch"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise PiConfigError(f"Limits.{name} must be a positive integer, not {value!r}.")

    def learn(self, messages: list[str]) -> bool:
        """Whether ``messages`` refuse a count as "greater than the maximum allowed"; if so,
        ``max_items_per_call`` is lowered to the limit they name (halved when they name none)."""
        text = " ".join(messages)
        if "maximum allowed" not in text:
            return False
        found = re.search(r"maximum allowed\D*(\d+)", text)
        limit = int(found.group(1)) if found else self.max_items_per_call // 2
        if 1 <= limit < self.max_items_per_call:
            self.max_items_per_call = limit
        return True

    @property
    def list_page_size(self) -> int:
        """``maxCount`` of list requests: ``page_size`` within the item limit."""
        return min(self.page_size, self.max_items_per_call)


class PiClient(Closing):
    """A PI Web API session: see :class:`Transport` for the connection settings."""

    def __init__(self, url: str, auth: PiAuth | None = None, *, limits: Limits | None = None,
                 ca_bundle: str | None = None, insecure_skip_tls_verify: bool = False,
                 connect_timeout: float = 10.0, read_timeout: float = 300.0, retry: RetryPolicy = RetryPolicy(),
                 max_requests_per_second: float | None = None):
        self.transport = Transport(url, auth, ca_bundle=ca_bundle, insecure_skip_tls_verify=insecure_skip_tls_verify,
                                   connect_timeout=connect_timeout, read_timeout=read_timeout, retry=retry,
                                   max_requests_per_second=max_requests_per_second)
        self.limits = limits or Limits()

    def __repr__(self) -> str:
        return f"PiClient({self.transport.url!r}, auth={self.transport.auth!r})"

    def close(self) -> None:
        self.transport.close()

    @property
    def url(self) -> str:
        return self.transport.url

    def url_groups(self, values: list[str], most: int | None = None, fixed: int = 0) -> list[list[str]]:
        """``values`` (WebIds or markers) in groups whose query (``&webId=value...``) fits in a URL
        beside ``fixed`` more characters, at most ``most`` (and ``limits.tags_per_request``) each."""
        most = min(most or self.limits.tags_per_request, self.limits.tags_per_request)
        room = self.limits.max_url_length - len(self.url) - fixed - 200
        groups: list[list[str]] = []
        length = room
        for value in values:
            cost = len(quote(value, safe="")) + 8
            if length + cost > room or len(groups[-1]) >= most:
                groups.append([])
                length = 0
            groups[-1].append(value)
            length += cost
        return groups

    def get(self, path: str, kind: type, params=None):
        """GET ``path`` and decode the reply into ``kind``."""
        content = self.transport.get(path, params=params)
        with gc_paused():
            return decode(content, kind)

    def server_time(self) -> int:
        """The server's clock now, in ns since the epoch (``GET system/status``, ``ServerTime``):
        what PI's ``*`` means, whatever this machine's clock says."""
        return to_ns(self.get("system/status", SystemStatus).ServerTime)

    def batch(self, resources: dict[str, str]) -> dict[str, SubReply]:
        """GET many resources through the batch controller, ``requests_per_batch`` at a time."""
        keys = list(resources)
        replies: dict[str, SubReply] = {}
        step = self.limits.requests_per_batch
        for i in range(0, len(keys), step):
            replies.update(run_batch(self.transport, {k: resources[k] for k in keys[i:i + step]}))
        return replies
