"""The pipeline's settings: one list of keys, read from the pipeline configuration (``spark.conf``).

The same keys appear in the local config file (under ``configuration:``) and in the asset bundle.
Values are text, as Spark configuration is. Secrets are references, never values:
``env:NAME`` reads an environment variable where the value is used (locally); on Databricks the
bundle sets the key to ``{{secrets/scope/key}}`` and the platform puts the secret in its place.

:func:`parse` checks every key before anything starts and raises :class:`SettingsError` naming
the key, what was given and what is accepted.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Callable, Mapping

from pi_client import SEARCH_MODES, PiConfigError, to_ns

NS_PER_SECOND = 1_000_000_000
AUTH_SCHEMES = ("anonymous", "basic", "bearer", "oidc", "kerberos")
TABLE_SETS = ("all", "timeseries", "catalog", "updates")
TRANSPORTS = ("markers", "channels")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class SettingsError(ValueError):
    """A setting is missing, unknown or has a value that is not accepted; the message says which."""


@dataclass(frozen=True)
class Key:
    """One configuration key: its default (None: required or unset) and what it means."""

    name: str
    default: str | None
    doc: str
    secret: bool = False


#: Every key the pipeline reads. The bundle's configuration, the local config file and the
#: documentation are checked against this list.
KEYS: tuple[Key, ...] = (
    Key("pi.url", None, "PI Web API base URL, e.g. https://pi.example.com/piwebapi"),
    Key("pi.auth", "anonymous", f"authentication: {', '.join(AUTH_SCHEMES)}"),
    Key("pi.user", "", "user name for basic authentication"),
    Key("pi.password", "", "password for basic authentication (a secret reference)", secret=True),
    Key("pi.token", "", "bearer token (a secret reference)", secret=True),
    Key("pi.oidc.client_id", "", "OpenID Connect client id (auth oidc)"),
    Key("pi.oidc.secret", "", "OpenID Connect client secret (a secret reference)", secret=True),
    Key("pi.oidc.token_url", "", "token endpoint; default: discovered from the server"),
    Key("pi.ca_bundle", "", "PEM file of the CA that signed the server's certificate"),
    Key("pi.insecure_skip_tls_verify", "false", "true turns TLS verification off (tests only)"),
    Key("pi.data_server", "", "PI Data Archive name; default: the first one the server lists"),
    Key("pi.tags.name_filter", "*", "tags whose names match this PI name filter (wildcards * and ?)"),
    Key("pi.tags.names", "", "comma-separated tag names; when set, exactly these tags"),
    Key("pi.tags.af_root", "", "AF element path; when set, the PI points its elements' attributes read"),
    Key("pi.start", "*-1d", "where new tags start: ISO 8601 with a zone, or *-DURATION before now"),
    Key("pi.end", "*", "where each run stops: * is now; ISO 8601 for a fixed end"),
    Key("pi.lookback", "1h", "re-read this much before each tag's cursor to catch late and edited values"),
    Key("pi.partition_size", "1000", "tags per partition (one Spark task, about one request per 1,000 tags)"),
    Key("pi.requests_per_second", "0", "ceiling on requests per second of each partition (0: none)"),
    Key("pi.max_items_per_call", "150000", "the server's MaxReturnedItemsPerCall: no request asks for more items; "
                                           "a lower limit the server names in a refusal is learned and kept in "
                                           "pi.state_path"),
    Key("pi.read_timeout", "60s", "how long to wait for a reply before the request is retried (6 tries in all); "
                                  "a server that never answers fails its tags after the tries"),
    Key("pi.af.database", "", "AF database name or path; empty: no AF tables, no event frames"),
    Key("pi.event_frames.templates", "", "comma-separated event frame template names; empty: all"),
    Key("pi.event_frames.start", "", "start of the event frame search window; default: pi.start"),
    Key("pi.event_frames.search_mode", "Overlapped", f"PI searchMode: {', '.join(SEARCH_MODES)}"),
    Key("pi.tables", "all", "which tables this pipeline makes: all, timeseries (values, log, cursors, their "
                            "silver, quarantine and quality metrics), catalog (points, AF, event frames and "
                            "their silver) or updates (pi_timeseries_updates: real time, from stream updates)"),
    Key("pi.updates.transport", "markers", "how pi.tables updates reads: markers (stream updates polled: Add, "
                                           "Update and Delete, any pi.auth) or channels (WebSocket push, lowest "
                                           "latency: no deletes, not with pi.auth bearer or oidc)"),
    Key("pi.shard", "0/1", "INDEX/COUNT: this pipeline reads the tags whose WebId hashes to INDEX of COUNT"),
    Key("pi.catalog_schema", "", "schema of pi_points and the AF and event frame tables when another pipeline "
                                 "makes them (catalog.schema); empty: this pipeline's own schema"),
    Key("pi.quality.future_tolerance", "10m", "rule not_in_future: how far a value's timestamp may be ahead of "
                                              "its ingestion (points flagged Future are exempt)"),
    Key("pi.state_path", None, "folder where the time-series source keeps its per-tag cursors and the "
                               "real-time source its markers (a Unity Catalog volume path on Databricks)"),
)
KEY_NAMES = tuple(k.name for k in KEYS)
SECRET_KEYS = tuple(k.name for k in KEYS if k.secret)
#: Where a local run hands the definitions the secret references that Spark Connect hides.
REFERENCES_VARIABLE = "PI_LAKEFLOW_SECRET_REFERENCES"


@dataclass(frozen=True)
class Settings:
    """Parsed settings; times are nanoseconds or ``None`` for "now", durations nanoseconds."""

    url: str
    auth: str
    user: str
    password: str
    token: str
    oidc_client_id: str
    oidc_secret: str
    oidc_token_url: str
    ca_bundle: str
    insecure_skip_tls_verify: bool
    data_server: str
    name_filter: str
    tag_names: tuple[str, ...]
    af_root: str
    start: str
    end: str
    lookback_ns: int
    partition_size: int
    requests_per_second: float
    max_items_per_call: int
    read_timeout_s: float
    af_database: str
    event_frame_templates: tuple[str, ...]
    event_frames_start: str
    search_mode: str
    tables: str
    updates_transport: str
    shard: tuple[int, int]
    catalog_schema: str
    future_tolerance_ns: int
    state_path: str

    def start_ns(self, now: int) -> int:
        return resolve_time(self.start, now)

    def end_ns(self, now: int) -> int:
        return resolve_time(self.end, now)

    def event_frames_start_ns(self, now: int) -> int:
        return resolve_time(self.event_frames_start or self.start, now)


def parse_duration(text: str) -> int:
    """``30s``, ``15m``, ``1h``, ``7d``, ``2w`` as nanoseconds."""
    found = _DURATION.match(text or "")
    if not found:
        raise ValueError(f"'{text}' is not a duration; write a number and a unit s, m, h, d or w, e.g. 1h")
    return int(float(found.group(1)) * _UNIT_SECONDS[found.group(2)] * NS_PER_SECOND)


def resolve_time(text: str, now: int) -> int:
    """``*`` (now), ``*-DURATION`` (before now) or ISO 8601 with a zone, as nanoseconds."""
    text = text.strip()
    if text == "*":
        return now
    if text.startswith("*-"):
        return now - parse_duration(text[2:])
    try:
        return to_ns(text)
    except PiConfigError:
        raise ValueError(f"'{text}' is not a time; write ISO 8601 with a zone (2024-05-01T00:00:00Z), "
                         f"* for now or *-DURATION such as *-7d") from None


def _names(text: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered not in ("true", "false"):
        raise ValueError(f"'{text}' is not true or false")
    return lowered == "true"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"'{text}' is not a whole number") from None
    if value < 1:
        raise ValueError(f"'{text}' must be 1 or more")
    return value


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"'{text}' is not a number") from None
    if value < 0:
        raise ValueError(f"'{text}' must be zero (no ceiling) or more")
    return value


def _choice(accepted: tuple[str, ...]) -> Callable[[str], str]:
    """A parser that accepts one of ``accepted`` in any letter case and returns its spelling."""
    def check(text: str) -> str:
        for option in accepted:
            if text.strip().lower() == option.lower():
                return option
        raise ValueError(f"'{text}' is not one of {', '.join(accepted)}")
    return check


def _url(text: str) -> str:
    if not re.match(r"^https?://[^/\s]+", text.strip()):
        raise ValueError(f"'{text}' is not an http(s) URL such as https://pi.example.com/piwebapi")
    return text.strip().rstrip("/")


def _time(text: str) -> str:
    resolve_time(text, 0)
    return text.strip()


def _maybe_time(text: str) -> str:
    return _time(text) if text.strip() else ""


def _duration(text: str) -> int:
    value = parse_duration(text)
    if value < 0:
        raise ValueError(f"'{text}' must not be negative")
    return value


def _seconds(text: str) -> float:
    value = _duration(text)
    if value == 0:
        raise ValueError(f"'{text}' must be longer than zero")
    return value / NS_PER_SECOND


def _shard(text: str) -> tuple[int, int]:
    found = re.match(r"^\s*(\d+)\s*/\s*(\d+)\s*$", text)
    if not found or not int(found.group(1)) < int(found.group(2)):
        raise ValueError(f"'{text}' is not INDEX/COUNT with 0 <= INDEX < COUNT, e.g. 0/1 or 2/4")
    return int(found.group(1)), int(found.group(2))


def _schema_name(text: str) -> str:
    if text.strip() and not re.match(r"^[A-Za-z_][\w-]*(\.[A-Za-z_][\w-]*)?$", text.strip()):
        raise ValueError(f"'{text}' is not a schema name; write schema or catalog.schema, or leave it empty")
    return text.strip()


def _path(text: str) -> str:
    if not text.strip():
        raise ValueError("an empty path")
    return text.strip()


_PARSERS: dict[str, Callable[[str], object]] = {
    "pi.url": _url, "pi.auth": _choice(AUTH_SCHEMES), "pi.insecure_skip_tls_verify": _bool,
    "pi.tags.names": _names, "pi.start": _time, "pi.end": _time, "pi.lookback": _duration,
    "pi.partition_size": _positive_int, "pi.requests_per_second": _rate,
    "pi.max_items_per_call": _positive_int, "pi.read_timeout": _seconds,
    "pi.event_frames.templates": _names, "pi.event_frames.start": _maybe_time,
    "pi.event_frames.search_mode": _choice(SEARCH_MODES), "pi.state_path": _path,
    "pi.tables": _choice(TABLE_SETS), "pi.updates.transport": _choice(TRANSPORTS), "pi.shard": _shard, "pi.catalog_schema": _schema_name,
    "pi.quality.future_tolerance": _duration,
}


def configuration(get: Callable[[str], str | None]) -> dict[str, str]:
    """The keys that are set, as text, through ``get`` (``spark.conf.get`` with a default of None):
    what a definition hands to the data sources, which parse it again where they run.

    Spark Connect answers None for keys that match Spark's redaction pattern (``pi.password``,
    ``pi.token``, ``pi.oidc.secret``), so a local run cannot pass those through ``spark.conf``.
    The local engine hands them over in the environment variable :data:`REFERENCES_VARIABLE`
    instead: JSON of key to *reference* (``env:NAME``), never a secret itself (the local config
    file refuses a literal secret), resolved where the client is made (:func:`resolve_secret`).
    On Databricks the variable is not set and the platform's resolved value is read as any other.
    """
    found = {name: value for name in KEY_NAMES if (value := get(name)) is not None}
    handed = json.loads(os.environ.get(REFERENCES_VARIABLE) or "{}")
    for key in SECRET_KEYS:
        if found.get(key) is None and key in handed:
            found[key] = handed[key]
    return found


def references(values: Mapping[str, str]) -> str:
    """The secret keys of a local configuration, for :data:`REFERENCES_VARIABLE` (JSON). Only
    references (``env:NAME``) are accepted: a secret's value must not travel in the environment."""
    handed = {key: values[key] for key in SECRET_KEYS if values.get(key)}
    for key, value in handed.items():
        if not value.startswith("env:"):
            raise SettingsError(f"{key}: only a reference (env:NAME) can be handed to a local run")
    return json.dumps(handed)


def parse(values: Mapping[str, object], *, literal_secrets: bool = True) -> Settings:
    """Settings from configuration text. Keys outside :data:`KEYS` that start with ``pi.`` are
    refused (a typo would otherwise be ignored); other keys (Spark's own) are left alone.

    ``literal_secrets=False`` (local config files) refuses a secret written as plain text: it must
    be ``env:NAME``.
    """
    unknown = sorted(k for k in values if str(k).startswith("pi.") and k not in KEY_NAMES)
    if unknown:
        raise SettingsError(f"unknown setting {', '.join(unknown)}; the settings are: {', '.join(KEY_NAMES)}")
    parsed = []
    for key in KEYS:
        raw = values.get(key.name)
        text = key.default if raw is None else str(raw)
        if text is None:
            raise SettingsError(f"{key.name} is missing: {key.doc}")
        if key.secret and text and not literal_secrets and not text.startswith("env:"):
            raise SettingsError(f"{key.name}: a secret must not be written in the file; "
                                f"write env:NAME and set the environment variable NAME")
        try:
            parsed.append(_PARSERS.get(key.name, str)(text))
        except ValueError as error:
            raise SettingsError(f"{key.name}: {error}") from None
    settings = Settings(*parsed)
    _check_together(settings)
    return settings


def _check_together(settings: Settings) -> None:
    needs = {"basic": (("pi.user", settings.user), ("pi.password", settings.password)),
             "bearer": (("pi.token", settings.token),),
             "oidc": (("pi.oidc.client_id", settings.oidc_client_id), ("pi.oidc.secret", settings.oidc_secret))}
    for key, value in needs.get(settings.auth, ()):
        if not value:
            raise SettingsError(f"{key} is needed with pi.auth {settings.auth}")
    if settings.tag_names and settings.af_root:
        raise SettingsError("pi.tags.names and pi.tags.af_root select tags in different ways; set one of them")
    if settings.updates_transport == "channels" and settings.auth in ("bearer", "oidc"):
        raise SettingsError(f"pi.updates.transport channels does not work with pi.auth {settings.auth}: PI Web API "
                            "channels accept basic, kerberos or anonymous; use pi.updates.transport markers")
    if settings.af_root and not settings.af_database:
        raise SettingsError("pi.tags.af_root needs pi.af.database (the database the path is in)")


def resolve_secret(key: str, value: str) -> str:
    """The secret behind a reference: ``env:NAME`` reads the environment; anything else is the
    value itself (Databricks has already replaced ``{{secrets/scope/key}}``)."""
    if not value.startswith("env:"):
        return value
    name = value[4:]
    found = os.environ.get(name)
    if found is None:
        raise SettingsError(f"{key} refers to the environment variable {name}, which is not set")
    return found
