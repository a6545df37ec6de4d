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
from dataclasses import dataclass, field, fields
from typing import Callable, Mapping

from pi_client import SEARCH_MODES

from pi_lakeflow.config import values
from pi_lakeflow.config.values import resolve_time
from pi_lakeflow.errors import SettingsError
from pi_lakeflow.tables.registry import TABLE_SETS

AUTH_SCHEMES = ("anonymous", "basic", "bearer", "oidc", "kerberos")
TRANSPORTS = ("markers", "channels")
CHANGE_FEEDS = ("markers", "lookback")


@dataclass(frozen=True)
class Key:
    """One configuration key: its name, its default (None: required), what it means, how its
    text is parsed, and whether it is a secret (a reference, never a value)."""

    name: str
    default: str | None
    doc: str
    parser: Callable[[str], object] = values.plain_text
    secret: bool = False


def _key(name: str, default: str | None, doc: str, parser: Callable[[str], object] = values.plain_text,
         secret: bool = False):
    """A field of :class:`Settings` bound to the configuration key ``name``."""
    return field(metadata={"key": Key(name, default, doc, parser, secret)})


def _interval_key(table: str, rows: str, example: str):
    """``pi.<table>.interval``: the interval of the derived table ``pi_timeseries_<table>``."""
    return _key(f"pi.{table}.interval", "", f"pi_timeseries_{table}: {rows} (whole seconds, e.g. {example}); "
                f"empty: the table is not made", values.interval)


def _name_filter_key(table: str):
    """``pi.<table>.name_filter``: which selected tags the derived table ``pi_timeseries_<table>`` reads."""
    return _key(f"pi.{table}.name_filter", "*", f"pi_timeseries_{table}: of the selected tags, those whose names "
                f"match this filter (wildcards * and ?)", values.name_filter)


@dataclass(frozen=True)
class Settings:
    """Parsed settings, each field bound by name to its configuration key (declared here, once);
    times are nanoseconds or ``None`` for "now", durations nanoseconds."""

    url: str = _key("pi.url", None, "PI Web API base URL, e.g. https://pi.example.com/piwebapi", values.url)
    auth: str = _key("pi.auth", "anonymous", f"authentication: {', '.join(AUTH_SCHEMES)}", values.choice(AUTH_SCHEMES))
    user: str = _key("pi.user", "", "user name for basic authentication")
    password: str = _key("pi.password", "", "password for basic authentication (a secret reference)", secret=True)
    token: str = _key("pi.token", "", "bearer token (a secret reference)", secret=True)
    oidc_client_id: str = _key("pi.oidc.client_id", "", "OpenID Connect client id (auth oidc)")
    oidc_secret: str = _key("pi.oidc.secret", "", "OpenID Connect client secret (a secret reference)", secret=True)
    oidc_token_url: str = _key("pi.oidc.token_url", "", "token endpoint; default: discovered from the server")
    ca_bundle: str = _key("pi.ca_bundle", "", "PEM file of the CA that signed the server's certificate")
    insecure_skip_tls_verify: bool = _key("pi.insecure_skip_tls_verify", "false",
                                          "true turns TLS verification off (tests only)", values.boolean)
    data_server: str = _key("pi.data_server", "", "PI Data Archive name; default: the first one the server lists")
    name_filter: str = _key("pi.tags.name_filter", "*",
                            "tags whose names match this PI name filter (wildcards * and ?)")
    tag_names: tuple[str, ...] = _key("pi.tags.names", "", "comma-separated tag names; when set, exactly these tags",
                                      values.names)
    af_root: str = _key("pi.tags.af_root", "",
                        "AF element path; when set, the PI points its elements' attributes read")
    start: str = _key("pi.start", "*-1d", "where new tags start: ISO 8601 with a zone, or *-DURATION before the server's now", values.time_text)
    end: str = _key("pi.end", "*", "where each run stops: * is the PI server's now (its clock, not this machine's); ISO 8601 for a fixed end", values.time_text)
    lookback_ns: int = _key("pi.lookback", "1h", "how far before each tag's cursor a read compares what PI "
                                                 "holds with what landed, to catch late, edited and deleted values: "
                                                 "every run (pi.changes lookback), or where a marker was lost", values.duration)
    changes: str = _key("pi.changes", "markers",
                        "how a run finds what changed in PI since the last: markers (each tag's stream-updates "
                        "marker is kept between runs and a run lands the changes PI reports; the look-back is "
                        "re-read only around a change before a tag's cursor, or where the server lost the marker; "
                        "with pi.end * only) or lookback (every run re-reads pi.lookback of every tag)",
                        values.choice(CHANGE_FEEDS))
    step_ns: int = _key("pi.step", "7d", "a back-fill reads at most this much of each tag's time per batch, and "
                                        "each batch commits: the tables fill step by step and a stopped run "
                                        "resumes after its last step (Spark 4.2 and later; none: one batch)", values.step)
    partition_size: int = _key("pi.partition_size", "1000",
                               "tags per partition (one Spark task, about one request per 1,000 tags)", values.positive_int)
    requests_per_second: float = _key("pi.requests_per_second", "0",
                                      "ceiling on requests per second of each partition (0: none)", values.rate)
    max_items_per_call: int = _key("pi.max_items_per_call", "150000",
                                   "the server's MaxReturnedItemsPerCall: no request asks for more items; a lower "
                                   "limit the server names in a refusal is learned and kept in pi.state_path",
                                   values.positive_int)
    read_timeout_s: float = _key("pi.read_timeout", "60s",
                                 "how long to wait for a reply before the request is retried (6 tries in all); a "
                                 "server that never answers fails its tags after the tries", values.seconds)
    af_database: str = _key("pi.af.database", "", "AF database name or path; empty: no AF tables, no event frames")
    event_frame_templates: tuple[str, ...] = _key("pi.event_frames.templates", "",
                                                  "comma-separated event frame template names; empty: all", values.names)
    event_frames_start: str = _key("pi.event_frames.start", "",
                                   "start of the event frame search window; default: pi.start", values.maybe_time)
    search_mode: str = _key("pi.event_frames.search_mode", "Overlapped", f"PI searchMode: {', '.join(SEARCH_MODES)}",
                            values.choice(SEARCH_MODES))
    interpolated_interval_ns: int = _interval_key("interpolated", "a value per tag every this long", "10m")
    interpolated_name_filter: str = _name_filter_key("interpolated")
    summaries_interval_ns: int = _interval_key("summaries", "one row per numeric tag and interval of this length",
                                               "1h")
    summaries_name_filter: str = _name_filter_key("summaries")
    tables: str = _key("pi.tables", "all", "which tables this pipeline makes: all, timeseries (values, log, "
                                           "cursors, interpolated values and summaries when set, their silver, "
                                           "quarantine and quality metrics), catalog (points, AF, event frames and "
                                           "their silver) or updates (pi_timeseries_updates: real time, from stream "
                                           "updates)", values.choice(TABLE_SETS))
    updates_transport: str = _key("pi.updates.transport", "markers",
                                  "how pi.tables updates reads: markers (stream updates polled: Add, Update and "
                                  "Delete, any pi.auth) or channels (WebSocket push, lowest latency: no deletes, not "
                                  "with pi.auth bearer or oidc)", values.choice(TRANSPORTS))
    shard: tuple[int, int] = _key("pi.shard", "0/1",
                                  "INDEX/COUNT: this pipeline reads the tags whose WebId hashes to INDEX of COUNT",
                                  values.shard)
    catalog_schema: str = _key("pi.catalog_schema", "",
                               "schema of pi_points and the AF and event frame tables when another pipeline makes "
                               "them (catalog.schema); empty: this pipeline's own schema", values.schema_name)
    future_tolerance_ns: int = _key("pi.quality.future_tolerance", "10m",
                                    "rule not_in_future: how far a value's timestamp may be ahead of its ingestion "
                                    "(points flagged Future are exempt)", values.duration)
    state_path: str = _key("pi.state_path", None, "folder where the time-series source keeps its per-tag cursors "
                                                  "and the real-time source its markers (a Unity Catalog volume "
                                                  "path on Databricks)", values.path)

    @property
    def markers(self) -> bool:
        """Whether runs read PI's changes through stream-update markers (pi.changes markers, and
        runs that end at the server's now: a fixed pi.end is a window, not a feed)."""
        return self.changes == "markers" and self.end == "*"

    def start_ns(self, now: int) -> int:
        return resolve_time(self.start, now)

    def end_ns(self, now: int) -> int:
        return resolve_time(self.end, now)

    def event_frames_start_ns(self, now: int) -> int:
        return resolve_time(self.event_frames_start or self.start, now)


#: Every key the pipeline reads, in the order of :class:`Settings`. The bundle's configuration,
#: the local config file and the documentation are checked against this list.
KEYS: tuple[Key, ...] = tuple(f.metadata["key"] for f in fields(Settings))
KEY_NAMES = tuple(k.name for k in KEYS)
SECRET_KEYS = tuple(k.name for k in KEYS if k.secret)
#: Where a local run hands the definitions the secret references that Spark Connect hides.
REFERENCES_VARIABLE = "PI_LAKEFLOW_SECRET_REFERENCES"


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
    parsed = {}
    for setting in fields(Settings):
        key = setting.metadata["key"]
        raw = values.get(key.name)
        text = key.default if raw is None else str(raw)
        if text is None:
            raise SettingsError(f"{key.name} is missing: {key.doc}")
        if key.secret and text and not literal_secrets and not text.startswith("env:"):
            raise SettingsError(f"{key.name}: a secret must not be written in the file; "
                                f"write env:NAME and set the environment variable NAME")
        try:
            parsed[setting.name] = key.parser(text)
        except ValueError as error:
            raise SettingsError(f"{key.name}: {error}") from None
    settings = Settings(**parsed)
    _check_together(settings)
    return settings


def from_options(options: Mapping[str, str]) -> Settings:
    """The settings among a data source's options (the ``pi.`` keys; the source's own, such as
    ``table``, are not settings)."""
    return parse({k: v for k, v in options.items() if k.startswith("pi.")})


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
