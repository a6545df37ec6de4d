"""``pi-lakeflow check``: what a run needs from its config and its server, checked in order
without Spark, one line each, stopping at the first failure (as ``dbt debug`` or Airbyte's
``check``): the settings, the credential, reaching the server (TLS), authentication, the data
server, the server's clock, the tag selection (how many and a sample), the AF database, and a
read of one selected tag (which also finds the server's item limit when it is below
``pi.max_items_per_call``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterator

from pi_client import PiError, data_servers, find_data_server, find_database, read_recorded
from pi_client.errors import PiAuthError
from pi_client.times import NS_PER_SECOND, to_pi_time

from pi_lakeflow import exits
from pi_lakeflow.config.connection import authentication, connect
from pi_lakeflow.config.settings import SettingsError
from pi_lakeflow.local.config import LocalConfig
from pi_lakeflow.local.runner import PREFLIGHT_RETRY, REACH_TIMEOUT
from pi_lakeflow.runtime.discovery import select_tags

#: How many selected names the tag check shows.
SAMPLE = 5
#: The span the read check asks of one tag, ending at the server's now.
READ_SPAN_NS = 3600 * NS_PER_SECOND


@dataclass(frozen=True)
class Outcome:
    """One check: its name, what it found, and the exit status it stands for (exits.OK: passed)."""

    check: str
    detail: str
    status: int = exits.OK

    @property
    def ok(self) -> bool:
        return self.status == exits.OK

    def line(self) -> str:
        return f"{'ok' if self.ok else 'FAIL':4}  {self.check:14}  {self.detail}"


def run_checks(config: LocalConfig) -> Iterator[Outcome]:
    """The checks in order; the last one yielded is the first that failed, if any. Bad settings
    and credentials stand for exits.USAGE, a server that cannot serve the run for exits.FAILED."""
    settings = config.settings
    identity = f" as {settings.user}" if settings.auth == "basic" else ""
    yield Outcome("settings", f"{config.path}: pi.url {settings.url}, pi.auth {settings.auth}{identity}, "
                              f"pi.tables {settings.tables}")
    try:
        authentication(settings)
    except (SettingsError, PiError) as error:
        yield Outcome("credential", str(error), exits.USAGE)
        return
    yield Outcome("credential", f"{settings.auth}: resolved" if settings.auth != "anonymous" else "none (anonymous)")
    with connect(settings, retry=PREFLIGHT_RETRY, read_timeout=REACH_TIMEOUT) as client:
        started, refused = time.perf_counter(), None
        try:
            data_servers(client)
        except PiAuthError as error:  # the server answered: reached, not authenticated
            refused = error
        except PiError as error:
            yield Outcome("reach", str(error), exits.FAILED)
            return
        yield Outcome("reach", f"{settings.url} answered in {time.perf_counter() - started:.2f} s{_tls(settings)}")
        if refused is not None:
            yield Outcome("authentication", str(refused), exits.FAILED)
            return
        yield Outcome("authentication", f"{settings.auth}{identity} accepted")
    with connect(settings, retry=PREFLIGHT_RETRY) as client:
        yield from _server_checks(client, settings)


def _tls(settings) -> str:
    if not settings.url.lower().startswith("https:"):
        return " (plain HTTP: nothing is encrypted)"
    if settings.insecure_skip_tls_verify:
        return " (TLS, certificate NOT verified: pi.insecure_skip_tls_verify)"
    return f" (TLS, certificate verified{' with ' + settings.ca_bundle if settings.ca_bundle else ''})"


def _server_checks(client, settings) -> Iterator[Outcome]:
    try:
        server = find_data_server(client, settings.data_server or None)
    except PiError as error:
        yield Outcome("data server", str(error), exits.FAILED)
        return
    if not server["is_connected"]:
        yield Outcome("data server", f"{server['name']}: the PI Web API is not connected to it", exits.FAILED)
        return
    yield Outcome("data server", f"{server['name']} (PI Data Archive {server['server_version'] or 'version unknown'})")
    try:
        now_ns = client.server_time()
    except PiError as error:
        yield Outcome("clock", str(error), exits.FAILED)
        return
    skew = (now_ns - time.time_ns()) / NS_PER_SECOND
    yield Outcome("clock", f"the server's now is {to_pi_time(now_ns)} ({_skew(skew)}); windows use the server's")
    try:
        selected = select_tags(client, settings)
    except PiError as error:
        yield Outcome("tags", str(error), exits.FAILED)
        return
    names = selected.table["name"].to_pylist()
    if selected.errors:
        yield Outcome("tags", f"the server has no tag named {', '.join(sorted(selected.errors))} "
                              f"({len(names):,} of the names found)", exits.USAGE)
        return
    if not names:
        yield Outcome("tags", f"the settings select no tag ({_selection(settings)}): a run would read nothing",
                      exits.USAGE)
        return
    sample = ", ".join(names[:SAMPLE]) + (", ..." if len(names) > SAMPLE else "")
    yield Outcome("tags", f"{len(names):,} selected by {_selection(settings)}: {sample}")
    if settings.af_database:
        try:
            find_database(client, settings.af_database)
        except PiError as error:
            yield Outcome("AF database", str(error), exits.FAILED)
            return
        yield Outcome("AF database", f"{settings.af_database} found")
    else:
        yield Outcome("AF database", "not set (pi.af.database): no AF or event frame tables")
    first = selected.table.slice(0, 1).to_pylist()[0]
    result = read_recorded(client, [first["web_id"]], now_ns - READ_SPAN_NS, now_ns)
    if result.errors:
        yield Outcome("read", f"{first['name']}: {next(iter(result.errors.values()))}", exits.FAILED)
        return
    limit = client.limits.max_items_per_call
    lower = f"; the server allows {limit:,} items per call, fewer than pi.max_items_per_call " \
            f"({settings.max_items_per_call:,}): runs ask for {limit:,}" if limit < settings.max_items_per_call else ""
    yield Outcome("read", f"{first['name']}: {result.values.num_rows:,} values in the last hour{lower}")


def _skew(seconds: float) -> str:
    if abs(seconds) < 60:
        return "this machine's clock agrees within a minute"
    days = abs(seconds) / 86_400
    size = f"{days:,.0f} days" if days >= 2 else f"{abs(seconds) / 60:,.0f} minutes"
    return f"this machine's clock is {size} {'behind' if seconds > 0 else 'ahead'}"


def _selection(settings) -> str:
    if settings.tag_names:
        return f"pi.tags.names ({len(settings.tag_names):,} given)"
    if settings.af_root:
        return f"pi.tags.af_root {settings.af_root}"
    return f"pi.tags.name_filter {settings.name_filter}"
