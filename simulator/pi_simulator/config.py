"""Settings of the simulated plant and of the simulated server, with their defaults."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from .pitime import TICKS_PER_DAY, TICKS_PER_SECOND


def _default_origin() -> int:
    now = int(datetime.now(timezone.utc).timestamp()) * TICKS_PER_SECOND
    return now - now % TICKS_PER_DAY


@dataclass(frozen=True)
class PlantConfig:
    """What the plant looks like and how its values behave. Same seed, same plant."""

    seed: int = 42
    tags: int = 10_000
    elements: int = 10_000
    event_frames: int = 1_000
    #: Fixed sampling interval for every tag in seconds; None mixes 1 s to 1 h per tag.
    sampling_seconds: float | None = None
    #: Timestamps on whole intervals (no sub-second phase, no exception jitter).
    aligned_timestamps: bool = False
    irregular_share: float = 0.3
    late_tag_share: float = 0.1
    # Per-value rates.
    system_state_rate: float = 0.005
    questionable_rate: float = 0.01
    substituted_rate: float = 0.003
    annotated_rate: float = 0.002
    duplicate_rate: float = 0.005
    error_value_rate: float = 0.0002
    #: Good numbers outside the point's span (Zero to Zero + Span), per event of a numeric point.
    out_of_span_rate: float = 0.001
    edit_rate: float = 0.002
    delete_rate: float = 0.001
    # Late and changed data (PI time durations).
    edit_delay: str = "20m"
    delete_delay: str = "25m"
    outage_period: str = "6h"
    outage_length: str = "30m"
    backfill_delay: str = "15m"
    #: Event frames are laid out over this window before the origin (and a tenth after it).
    event_frame_window: str = "30d"
    #: Ticks (100 ns since epoch, UTC) that anchor the event frames; midnight UTC today by default.
    origin_ticks: int = field(default_factory=_default_origin)


@dataclass(frozen=True)
class ServerConfig:
    """The server's limits, security and injected failures; each one can be switched."""

    max_returned_items_per_call: int = 150_000
    max_url_length: int = 16_384
    max_request_content_length: int = 4 * 1024 * 1024
    #: Requests per second per client address; 0 turns rate limiting off.
    rate_limit: int = 0
    rate_limit_retry_after: int = 1
    csrf_defense: bool = True
    #: Accepted schemes: any of "anonymous", "basic", "bearer", "kerberos" (a fixed test ticket).
    auth: tuple[str, ...] = ("anonymous",)
    users: dict[str, str] = field(default_factory=lambda: {"piuser": "pipassword"})
    bearer_tokens: tuple[str, ...] = ()
    oidc_clients: dict[str, str] = field(default_factory=lambda: {"pi-lakeflow": "client-secret"})
    oidc_token_lifetime: int = 3600
    #: Added latency per request, seconds.
    latency: float = 0.0
    #: Share of requests that fail with the given fault; see FAULTS in server.py.
    fault_rate: float = 0.0
    faults: tuple[str, ...] = ("503",)
    #: Tag names whose reads fail on the server (a sub-request status 500 with a message).
    failing_tags: tuple[str, ...] = ()
    #: AF element names whose attributes the caller may not read (AF security: 403 with a message).
    denied_elements: tuple[str, ...] = ()
    #: Tag names whose first ``flaky_failures`` reads fail with 503, then succeed.
    flaky_tags: tuple[str, ...] = ()
    flaky_failures: int = 2
    #: Markers older than this many seconds are gone (404 "Cache not found").
    marker_ttl: float = 600.0
    #: Seconds between pushes on a channel (WebSocket).
    channel_interval: float = 1.0
