"""``pi-lakeflow simulate``: the simulator's command line (its options, the server they make).

The pi-lakeflow command hands ``simulate``'s arguments to :func:`main`, so the options live with
the simulator they configure. Bad values end with one line and exit status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from .api import PiWebApi
from .clock import Clock
from .config import PlantConfig, ServerConfig
from .pitime import TimeStringError, parse_duration, parse_time
from .server import FAULTS, SimulatorServer

USAGE = 2  # the exit status of bad input (pi_lakeflow.exits.USAGE)


class UsageError(Exception):
    """A bad option value: the message says what was wrong and what is accepted."""


def _number(kind: type, what: str, low: float, high: float | None = None):
    """An argparse type: ``kind`` of ``text`` between ``low`` and ``high`` (inclusive)."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not {what}") from None
        if value < low or (high is not None and value > high):
            limits = f"between {low} and {high}" if high is not None else f"{low} or more"
            raise argparse.ArgumentTypeError(f"'{text}' must be {limits}")
        return value
    return parse


_positive_int = _number(int, "a whole number", 0)
_rate = _number(float, "a number", 0, 1)
_seconds = _number(float, "a number of seconds", 0)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The simulator's options: where it listens, the plant, the server's limits, faults."""
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=_positive_int, default=5443, help="port (default 5443; 0 picks one)")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    plant = parser.add_argument_group("plant")
    plant.add_argument("--seed", type=_positive_int, default=42, help="same seed, same plant (default 42)")
    plant.add_argument("--tags", type=_positive_int, default=10_000, help="PI points (default 10000)")
    plant.add_argument("--elements", type=_positive_int, default=10_000, help="AF elements (default 10000)")
    plant.add_argument("--event-frames", type=_positive_int, default=1_000, help="event frames (default 1000)")
    plant.add_argument("--sampling", default=None, metavar="DURATION",
                       help="one sampling interval for every tag, e.g. 60s or 1m (default: mixed 1s to 1h)")
    plant.add_argument("--aligned", action="store_true",
                       help="timestamps on whole intervals: no sub-second phase, no exception jitter")
    plant.add_argument("--clock", default=None, metavar="TIME",
                       help="freeze the server clock at this time (ISO 8601); default: follow the wall clock")
    plant.add_argument("--origin", default=None, metavar="TIME",
                       help="anchor of the event frames (default: midnight UTC today)")
    server = parser.add_argument_group("server limits and security")
    server.add_argument("--max-items", type=_positive_int, default=150_000,
                        help="MaxReturnedItemsPerCall (default 150000)")
    server.add_argument("--rate-limit", type=_positive_int, default=0,
                        help="requests per second per client before 429 (default 0: off)")
    server.add_argument("--no-csrf", action="store_true", help="turn CSRF defence off (on by default)")
    server.add_argument("--auth", default="anonymous",
                        help="accepted schemes, comma-separated: anonymous, basic, bearer (default anonymous)")
    server.add_argument("--user", action="append", default=[], metavar="NAME:PASSWORD",
                        help="a Basic user (repeatable; default piuser:pipassword); NAME:env:VAR takes the "
                             "password from the environment variable VAR, off the process list")
    server.add_argument("--oidc-client", action="append", default=[], metavar="ID:SECRET",
                        help="an OpenID Connect client for Bearer tokens (repeatable; ID:env:VAR as for --user)")
    server.add_argument("--tls-cert", default=None, help="serve HTTPS with this certificate (PEM)")
    server.add_argument("--tls-key", default=None, help="the certificate's private key (PEM)")
    faults = parser.add_argument_group("injected failures")
    faults.add_argument("--latency", type=_seconds, default=0.0, help="added seconds per request")
    faults.add_argument("--fault-rate", type=_rate, default=0.0, help="share of requests that fail (0 to 1)")
    faults.add_argument("--faults", default="503", help=f"which faults, comma-separated: {', '.join(FAULTS)}")
    faults.add_argument("--failing-tag", action="append", default=[], metavar="NAME",
                        help="reads of this tag fail with a server error (repeatable)")
    faults.add_argument("--denied-element", action="append", default=[], metavar="NAME",
                        help="the attributes of this AF element are denied (403, AF security; repeatable)")
    faults.add_argument("--marker-ttl", type=_seconds, default=600.0,
                        help="seconds before a stream-update marker expires (default 600)")


def build(args: argparse.Namespace) -> SimulatorServer:
    """The configured simulator, not yet started. Raises UsageError on bad values."""

    now_guess = int(time.time() * 10_000_000)
    try:
        sampling = parse_duration(args.sampling) / 10_000_000 if args.sampling else None
    except TimeStringError as error:
        raise UsageError(f"--sampling: {error}") from None
    try:
        clock = Clock(parse_time(args.clock, now_guess)) if args.clock else Clock()
        origin = {"origin_ticks": parse_time(args.origin, now_guess)} if args.origin else {}
    except TimeStringError as error:
        raise UsageError(f"--clock/--origin: {error}") from None
    schemes = tuple(s.strip().lower() for s in args.auth.split(",") if s.strip())
    unknown = [s for s in schemes if s not in ("anonymous", "basic", "bearer")]
    if unknown or not schemes:
        raise UsageError(f"--auth: unknown scheme {', '.join(unknown) or '(none)'}; accepted: anonymous, basic, bearer")
    faults = tuple(f.strip() for f in args.faults.split(",") if f.strip())
    if any(f not in FAULTS for f in faults) or not faults:
        raise UsageError(f"--faults: '{args.faults}' is not a list of {', '.join(FAULTS)}")
    users = _pairs(args.user, "--user", "NAME:PASSWORD") or {"piuser": "pipassword"}
    clients = _pairs(args.oidc_client, "--oidc-client", "ID:SECRET") or {"pi-lakeflow": "client-secret"}
    if bool(args.tls_cert) != bool(args.tls_key):
        raise UsageError("--tls-cert and --tls-key go together")
    if sampling is not None and sampling <= 0:
        raise UsageError("--sampling must be a positive duration such as 1s or 1m")
    plant = PlantConfig(seed=args.seed, tags=args.tags, elements=args.elements, event_frames=args.event_frames,
                        sampling_seconds=sampling, aligned_timestamps=args.aligned, **origin)
    server = ServerConfig(max_returned_items_per_call=args.max_items or 1, rate_limit=args.rate_limit,
                          csrf_defense=not args.no_csrf, auth=schemes, users=users, oidc_clients=clients,
                          latency=args.latency, fault_rate=args.fault_rate, faults=faults,
                          failing_tags=tuple(args.failing_tag), denied_elements=tuple(args.denied_element),
                          marker_ttl=args.marker_ttl)
    try:
        return SimulatorServer(PiWebApi(plant, server, clock), host=args.host, port=args.port,
                               tls_cert=args.tls_cert, tls_key=args.tls_key, verbose=args.verbose)
    except OSError as error:
        raise UsageError(f"cannot listen on {args.host}:{args.port}: {error.strerror or error}") from None


def _pairs(items: list[str], option: str, form: str) -> dict[str, str]:
    """NAME:SECRET pairs; a SECRET written env:VAR is that environment variable's value."""
    pairs = {}
    for item in items:
        name, sep, secret = item.partition(":")
        if not sep or not name:
            raise UsageError(f"{option}: expected {form}, got a value without ':'")
        if secret.startswith("env:"):
            variable = secret[len("env:"):]
            if not os.environ.get(variable):
                raise UsageError(f"{option}: {name}'s secret is env:{variable}, and {variable} is not set")
            secret = os.environ[variable]
        pairs[name] = secret
    return pairs


def describe(server: SimulatorServer) -> str:
    api = server.api
    plant = api.plant
    frames_open = sum(1 for f in plant.event_frames if f.start_ticks <= api.now() < f.planned_end_ticks)
    return (f"PI Web API simulator serving {server.url}\n"
            f"  {len(plant.points):,} PI points on data server PISRV01, "
            f"{len(plant.elements):,} AF elements, {len(plant.event_frames):,} event frames "
            f"({frames_open} in progress)\n"
            f"  auth: {', '.join(api.server_config.auth)}; MaxReturnedItemsPerCall "
            f"{api.server_config.max_returned_items_per_call:,}; CSRF defence "
            f"{'on' if api.server_config.csrf_defense else 'off'}")


def main(argv: list[str] | None = None, prog: str = "pi-simulator") -> int:
    """Serve the simulator the options describe until Ctrl-C; 2 with one line on bad input."""
    import pyarrow

    parser = argparse.ArgumentParser(prog=prog, description="Serve a simulated PI Web API (data server, AF, "
                                                            "event frames).")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        server = build(args)
    except UsageError as error:
        print(f"{prog}: {error}", file=sys.stderr)
        return USAGE
    # The simulator allocates and frees large Arrow buffers per request; mimalloc served them
    # about 1.5x faster than jemalloc here (bench/README.md). This process is the server's own.
    pyarrow.set_memory_pool(pyarrow.mimalloc_memory_pool())
    print(describe(server), flush=True)
    print("  Ctrl-C stops it.", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("\nstopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
