"""The ``pi-lakeflow`` command: one console script, one subcommand per job.

Bad input ends with one line naming what was wrong and what is accepted, and exit status 2; the
statuses are pi_lakeflow.exits' (0 complete, 1 failed, 2 bad input, 3 completed with failures).
"""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from pi_lakeflow import exits

#: Top-level modules that only the ``local`` extra installs (the deployable wheel leaves them out).
LOCAL_EXTRA = ("pyspark", "pi_simulator", "yaml", "plotly", "databricks")


class UsageError(Exception):
    """Bad input from the command line: the message says what was wrong and what is accepted."""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"'{text}' must be zero or more")
    return value


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"'{text}' must be between 0 and 1")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of seconds") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"'{text}' must be zero or more seconds")
    return value


def _add_simulator_options(parser: argparse.ArgumentParser) -> None:
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
                        help="a Basic user (repeatable; default piuser:pipassword)")
    server.add_argument("--oidc-client", action="append", default=[], metavar="ID:SECRET",
                        help="an OpenID Connect client for Bearer tokens (repeatable)")
    server.add_argument("--tls-cert", default=None, help="serve HTTPS with this certificate (PEM)")
    server.add_argument("--tls-key", default=None, help="the certificate's private key (PEM)")
    faults = parser.add_argument_group("injected failures")
    faults.add_argument("--latency", type=_seconds, default=0.0, help="added seconds per request")
    faults.add_argument("--fault-rate", type=_rate, default=0.0, help="share of requests that fail (0 to 1)")
    faults.add_argument("--faults", default="503", help=f"which faults, comma-separated: {_fault_names()}")
    faults.add_argument("--failing-tag", action="append", default=[], metavar="NAME",
                        help="reads of this tag fail with a server error (repeatable)")
    faults.add_argument("--denied-element", action="append", default=[], metavar="NAME",
                        help="the attributes of this AF element are denied (403, AF security; repeatable)")
    faults.add_argument("--marker-ttl", type=_seconds, default=600.0,
                        help="seconds before a stream-update marker expires (default 600)")


def _fault_names() -> str:
    try:
        from pi_simulator import FAULTS
    except ModuleNotFoundError:
        return "(the simulator is not installed)"
    return ", ".join(FAULTS)


def build_simulator(args: argparse.Namespace):
    """The configured simulator (a pi_simulator.SimulatorServer), not yet started. Raises
    UsageError on bad values."""
    from pi_simulator import FAULTS, Clock, PiWebApi, PlantConfig, ServerConfig, SimulatorServer
    from pi_simulator.pitime import TimeStringError, parse_duration, parse_time

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
    pairs = {}
    for item in items:
        name, sep, secret = item.partition(":")
        if not sep or not name:
            raise UsageError(f"{option}: expected {form}, got a value without ':'")
        pairs[name] = secret
    return pairs


def _describe(server) -> str:
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


def cmd_simulate(args: argparse.Namespace) -> int:
    import pyarrow

    # The simulator allocates and frees large Arrow buffers per request; mimalloc served them
    # about 1.5x faster than jemalloc here (bench/README.md). This process is the server's own.
    pyarrow.set_memory_pool(pyarrow.mimalloc_memory_pool())
    server = build_simulator(args)
    print(_describe(server), flush=True)
    print("  Ctrl-C stops it.", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("\nstopped", flush=True)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Start the embedded simulator, run the pipeline on it twice, show what landed."""
    from pi_lakeflow.demo import run_demo
    from pi_lakeflow.local import StateInUse

    try:
        return run_demo(args.tags, Path(args.state_dir), args.hours)
    except StateInUse as error:
        raise UsageError(str(error)) from None


def _load(path: str):
    from pi_lakeflow.local import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as error:
        raise UsageError(str(error)) from None


def _preflight(config, command: str, missing_note: str = "") -> bool:
    """Whether the credentials and the server are good (else one message: before Spark starts);
    warns of a selection of no tag and of selected names the server lacks. Bad settings and a
    secret reference that is not set are UsageError."""
    from pi_client import PiError
    from pi_lakeflow.local import ConfigError, preflight
    from pi_lakeflow.settings import SettingsError

    try:
        selected, missing = preflight(config)
    except (ConfigError, SettingsError) as error:
        raise UsageError(str(error)) from None
    except PiError as error:
        print(f"pi-lakeflow {command}: {error}", file=sys.stderr)
        return False
    if not selected:
        print(f"warning: the settings select no tag (pi.tags.*); the {command} lands no values", file=sys.stderr)
    if missing:
        print(f"warning: the server has no tag named {', '.join(missing)}{missing_note}", file=sys.stderr)
    return True


def cmd_run(args: argparse.Namespace) -> int:
    from pi_lakeflow.local import run_pipeline

    config = _load(args.config)
    if config.settings.tables == "updates":
        raise UsageError(f"{args.config}: pi.tables updates is the real-time table: run it with pi-lakeflow stream "
                         f"(on Databricks, the continuous pipeline of the bundle's realtime target)")
    with _holding(config, "run"):
        if not _preflight(config, "run", "; the run lists them in pi_ingestion_log (partition -1)"):
            return exits.FAILED
        return run_pipeline(config, full_refresh=args.full_refresh)


@contextmanager
def _holding(config, command: str) -> Iterator[None]:
    """Hold the config's state_dir for this command (local.state_lock), before anything reads or
    changes it; a state_dir that another process holds is a UsageError."""
    from pi_lakeflow.local import StateInUse, state_lock

    try:
        with state_lock(config, command):
            yield
    except StateInUse as error:
        raise UsageError(str(error)) from None


def cmd_stream(args: argparse.Namespace) -> int:
    from pyspark.errors import PySparkException

    from pi_lakeflow.local import spark_error
    from pi_lakeflow.stream import run_stream

    config = _load(args.config)
    if config.settings.tables != "updates":
        raise UsageError(f"{args.config}: pi.tables is {config.settings.tables}; pi-lakeflow stream runs the "
                         f"real-time table: set pi.tables: updates (and a state_dir of its own)")
    with _holding(config, "stream"):
        if not _preflight(config, "stream"):
            return exits.FAILED
        try:
            return run_stream(config)
        except PySparkException as error:
            print(f"pi-lakeflow stream: {spark_error(error)}", file=sys.stderr)
            return exits.FAILED


def cmd_query(args: argparse.Namespace) -> int:
    from pi_lakeflow.local import ConfigError
    from pi_lakeflow.query import run_query

    config = _load(args.config)
    try:
        with _holding(config, "query"):
            return run_query(config, args.sql, args.format)
    except ConfigError as error:
        raise UsageError(str(error)) from None


def cmd_report(args: argparse.Namespace) -> int:
    from pyspark.errors import PySparkException

    from pi_lakeflow.local import ConfigError, spark_error
    from pi_lakeflow.report import write_report

    out = Path(args.out)
    if not out.parent.is_dir():
        raise UsageError(f"--out {args.out}: the folder {out.parent} does not exist")
    config = _load(args.config)
    try:
        with _holding(config, "report"):
            found = write_report(config, out)
    except ConfigError as error:
        raise UsageError(str(error)) from None
    except PySparkException as error:
        print(f"pi-lakeflow report: {spark_error(error)} (the report needs the time-series and quality "
              f"tables: a run with pi.tables all or timeseries)", file=sys.stderr)
        return exits.FAILED
    empty = [p.title for p in found if p.rows.empty]
    print(f"wrote {out} ({len(found)} panels{'; no rows yet: ' + ', '.join(empty) if empty else ''})")
    return 0


def _workspace_client(args: argparse.Namespace):
    from databricks.sdk import WorkspaceClient

    return WorkspaceClient(profile=args.profile) if args.profile else WorkspaceClient()


def _read_secret(variable: str, prompt: str) -> str:
    import getpass
    import os

    return os.environ.get(variable) or getpass.getpass(prompt)


def cmd_workspace(args: argparse.Namespace) -> int:
    from databricks.sdk.errors import DatabricksError

    from pi_lakeflow.workspace import WorkspaceError, pipeline_status, store_secrets

    try:
        client = _workspace_client(args)
        if args.action == "secrets":
            lines = store_secrets(client, args.scope, args.auth, _read_secret)
        else:
            lines = pipeline_status(client, args.pipeline, args.warehouse).lines()
    except (DatabricksError, WorkspaceError, ValueError) as error:
        print(f"pi-lakeflow workspace {args.action}: {str(error).splitlines()[0]}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pi-lakeflow", description="PI System data into the lakehouse.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    simulate = commands.add_parser("simulate", help="serve the PI Web API simulator",
                                   description="Serve a simulated PI Web API (data server, AF, event frames).")
    simulate.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    simulate.add_argument("--port", type=_positive_int, default=5443, help="port (default 5443; 0 picks one)")
    simulate.add_argument("--verbose", action="store_true", help="log every request")
    _add_simulator_options(simulate)
    simulate.set_defaults(run=cmd_simulate)
    demo = commands.add_parser("demo", help="run the pipeline on the embedded simulator and show what landed",
                               description="Start the embedded simulator, run the pipeline twice (back-fill, then "
                                           "incremental) into a local catalog, and show what landed.")
    demo.add_argument("--tags", type=_positive_int, default=1_000, help="PI points (default 1000)")
    demo.add_argument("--hours", type=_positive_int, default=6, help="hours of history to back-fill (default 6)")
    demo.add_argument("--state-dir", default="pi-lakeflow-demo",
                      help="folder for the local catalog and the demo's config (default ./pi-lakeflow-demo)")
    demo.set_defaults(run=cmd_demo)
    run = commands.add_parser("run", help="run the pipeline once on local Spark",
                              description="Run the declarative pipeline once (incremental) with local Spark.")
    run.add_argument("--config", required=True, help="the local config file (YAML; see README)")
    run.add_argument("--full-refresh", action="store_true", help="reset every table and read from pi.start again")
    run.set_defaults(run=cmd_run)
    stream = commands.add_parser("stream", help="run the real-time table until stopped (Ctrl-C)",
                                 description="Poll PI stream updates into pi_timeseries_updates, poll after poll, "
                                             "until Ctrl-C (the next start resumes); the config sets pi.tables: updates.")
    stream.add_argument("--config", required=True, help="the local config file (YAML; pi.tables: updates)")
    stream.set_defaults(run=cmd_stream)
    query = commands.add_parser("query", help="print a SQL query over the local tables",
                                description="Print the result of a SQL query over the tables of a local run.")
    query.add_argument("sql", help='e.g. "SELECT name, count(*) FROM pi_timeseries GROUP BY name"')
    query.add_argument("--config", required=True, help="the local config file of the runs")
    query.add_argument("--format", choices=("table", "csv", "json"), default="table", help="output (default table)")
    query.set_defaults(run=cmd_query)
    report = commands.add_parser("report", help="write the quality dashboard's panels as one HTML file",
                                 description="The quality dashboard (pass rate per rule, quarantine, ingestion, "
                                             "freshness, failed tags) from the local tables, as one HTML file.")
    report.add_argument("--config", required=True, help="the local config file of the runs")
    report.add_argument("--out", default="pi-lakeflow-report.html", help="file to write (default ./pi-lakeflow-report.html)")
    report.set_defaults(run=cmd_report)
    workspace = commands.add_parser("workspace", help="set up and watch the deployed pipeline (databricks-sdk)",
                                    description="Workspace set-up and status with databricks-sdk; the workspace "
                                                "comes from DATABRICKS_HOST/DATABRICKS_TOKEN or --profile.")
    workspace.add_argument("action", choices=("secrets", "status"),
                           help="secrets: store the PI credential in a secret scope (from $PI_PASSWORD, $PI_TOKEN "
                                "or $PI_OIDC_SECRET, else a prompt); status: latest update and expectation counts")
    workspace.add_argument("--profile", default=None, help="a profile of ~/.databrickscfg")
    workspace.add_argument("--scope", default="pi-lakeflow", help="secret scope (default pi-lakeflow)")
    workspace.add_argument("--auth", default="basic", choices=("basic", "bearer", "oidc"),
                           help="which PI credential to store (default basic: pi-password)")
    workspace.add_argument("--pipeline", default="pi_lakeflow_timeseries",
                           help="pipeline name for status (default pi_lakeflow_timeseries)")
    workspace.add_argument("--warehouse", default=None,
                           help="SQL warehouse id to read expectation counts from the event log")
    workspace.set_defaults(run=cmd_workspace)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except UsageError as error:
        print(f"pi-lakeflow {args.command}: {error}", file=sys.stderr)
        return exits.USAGE
    except ModuleNotFoundError as error:
        if (error.name or "").split(".")[0] not in LOCAL_EXTRA:
            raise
        print(f"pi-lakeflow {args.command}: needs {error.name}, which the local extra installs: "
              f"pip install 'pi-lakeflow[local]' (the deployable wheel leaves it out)", file=sys.stderr)
        return exits.USAGE


if __name__ == "__main__":
    sys.exit(main())
