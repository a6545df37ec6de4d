"""The ``pi-lakeflow`` command: one console script, one subcommand per job.

Bad input ends with one line naming what was wrong and what is accepted, and exit status 2; the
statuses are pi_lakeflow.exits' (0 complete, 1 failed, 2 bad input, 3 completed with failures).
"""

from __future__ import annotations

import argparse
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from pi_lakeflow import exits

#: Top-level modules that only the ``local`` extra installs (the deployable wheel leaves them out).
LOCAL_EXTRA = ("pyspark", "pi_simulator", "yaml", "plotly", "databricks")


class UsageError(Exception):
    """Bad input from the command line: the message says what was wrong and what is accepted."""


def _whole_number(low: int, meaning: str = ""):
    """A parser of whole numbers of ``low`` or more; ``meaning`` says what ``low`` stands for."""
    def parse(text: str) -> int:
        if not text.strip().isdigit() or int(text) < low:
            raise argparse.ArgumentTypeError(f"'{text}' is not a whole number of {low} or more{meaning}")
        return int(text)
    return parse


_count = _whole_number(1)  # a demo size
_limit = _whole_number(0, " (0: no limit)")  # a row limit


def cmd_simulate(args: argparse.Namespace) -> int:
    """The simulator's own command line (pi_simulator.command), with the arguments after ``simulate``."""
    from pi_simulator.command import main as simulate
    return simulate(args.options, prog="pi-lakeflow simulate")


def cmd_demo(args: argparse.Namespace) -> int:
    """Start the embedded simulator, run the pipeline on it twice, show what landed."""
    from pi_lakeflow.local.demo import run_demo
    from pi_lakeflow.local.runner import StateInUse

    try:
        return run_demo(args.tags, Path(args.state_dir), args.hours)
    except StateInUse as error:
        raise UsageError(str(error)) from None


def _load(path: str):
    from pi_lakeflow.local.runner import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as error:
        raise UsageError(str(error)) from None


def _preflight(config, command: str, missing_note: str = "", allow_no_tags: bool = False) -> bool:
    """Whether the credentials and the server are good (else one message: before Spark starts);
    warns of selected names the server lacks. Bad settings, a secret reference that is not set
    and a selection of no tag (unless ``allow_no_tags``) are UsageError."""
    from pi_client import PiError
    from pi_lakeflow.local.runner import ConfigError, preflight
    from pi_lakeflow.config.settings import SettingsError

    try:
        selected, missing = preflight(config)
    except (ConfigError, SettingsError) as error:
        raise UsageError(str(error)) from None
    except PiError as error:
        print(f"pi-lakeflow {command}: {error}", file=sys.stderr)
        return False
    if not selected and not allow_no_tags:
        raise UsageError(f"{config.path}: the settings select no tag on the server (pi.tags.name_filter, "
                         f"pi.tags.names or pi.tags.af_root); pi-lakeflow check --config {config.path} shows what "
                         f"they select, --allow-no-tags runs anyway")
    if missing:
        print(f"warning: the server has no tag named {', '.join(missing)}{missing_note}", file=sys.stderr)
    return True


def cmd_run(args: argparse.Namespace) -> int:
    from pi_lakeflow.local.runner import run_pipeline

    config = _load(args.config)
    if config.settings.tables == "updates":
        raise UsageError(f"{args.config}: pi.tables updates is the real-time table: run it with pi-lakeflow stream "
                         f"(on Databricks, the continuous pipeline of the bundle's realtime target)")
    with _holding(config, "run"):
        if not _preflight(config, "run", "; the run lists them in pi_ingestion_log (partition -1)",
                          args.allow_no_tags):
            return exits.FAILED
        summary = Path(args.summary_json) if args.summary_json else None
        if summary is not None and not summary.parent.is_dir():
            raise UsageError(f"--summary-json {args.summary_json}: the folder {summary.parent} does not exist")
        return run_pipeline(config, full_refresh=args.full_refresh, output=_output(args), summary_json=summary)


@contextmanager
def _holding(config, command: str) -> Iterator[None]:
    """Hold the config's state_dir for this command (local.state_lock), before anything reads or
    changes it; a state_dir that another process holds is a UsageError."""
    from pi_lakeflow.local.runner import StateInUse, state_lock

    try:
        with state_lock(config, command):
            yield
    except StateInUse as error:
        raise UsageError(str(error)) from None


def _output(args: argparse.Namespace) -> str:
    """quiet, normal or verbose, from a command's --quiet and --verbose (_loudness)."""
    return "verbose" if args.verbose else "quiet" if args.quiet else "normal"


def _loudness(command: argparse.ArgumentParser, verbose: str, quiet: str) -> None:
    """A command's --verbose and --quiet (one or neither)."""
    loudness = command.add_mutually_exclusive_group()
    loudness.add_argument("--verbose", action="store_true", help=verbose)
    loudness.add_argument("--quiet", action="store_true", help=quiet)


def cmd_stream(args: argparse.Namespace) -> int:
    from pyspark.errors import PySparkException

    from pi_lakeflow.local.runner import spark_error
    from pi_lakeflow.local.stream import run_stream

    config = _load(args.config)
    if config.settings.tables != "updates":
        raise UsageError(f"{args.config}: pi.tables is {config.settings.tables}; pi-lakeflow stream runs the "
                         f"real-time table: set pi.tables: updates (and a state_dir of its own)")
    with _holding(config, "stream"):
        if not _preflight(config, "stream", allow_no_tags=args.allow_no_tags):
            return exits.FAILED
        try:
            return run_stream(config, output=_output(args))
        except PySparkException as error:
            print(f"pi-lakeflow stream: {spark_error(error)}", file=sys.stderr)
            return exits.FAILED


def cmd_check(args: argparse.Namespace) -> int:
    """Each check's line; the status of the first that fails (pi_lakeflow.local.check)."""
    from pi_lakeflow.local.check import run_checks

    config = _load(args.config)
    for outcome in run_checks(config):
        print(outcome.line(), flush=True)
        if not outcome.ok:
            return outcome.status
    return exits.OK


def cmd_init(args: argparse.Namespace) -> int:
    from pi_lakeflow.config.settings import SettingsError, parse
    from pi_lakeflow.local.config_template import config_template

    out = Path(args.out)
    if out.exists():
        raise UsageError(f"{args.out} exists; give another --out (init never overwrites a file)")
    if not out.parent.is_dir():
        raise UsageError(f"--out {args.out}: the folder {out.parent} does not exist")
    try:
        parse({"pi.url": args.url, "pi.state_path": "."})
    except SettingsError as error:
        raise UsageError(f"--url: {error}") from None
    out.write_text(config_template(args.out, args.url), encoding="utf-8")
    print(f"wrote {out}; next: set PI_PASSWORD, then pi-lakeflow check --config {out}")
    return exits.OK


def cmd_query(args: argparse.Namespace) -> int:
    from pi_lakeflow.local.runner import ConfigError
    from pi_lakeflow.local.query import run_query

    config = _load(args.config)
    out = Path(args.out) if args.out else None
    if out is not None and not out.parent.is_dir():
        raise UsageError(f"--out {args.out}: the folder {out.parent} does not exist")
    try:  # no lock: it reads the table folders, beside a run (local.query)
        return run_query(config, args.sql, args.format, args.limit, out)
    except ConfigError as error:
        raise UsageError(str(error)) from None


def cmd_tables(args: argparse.Namespace) -> int:
    from pi_lakeflow.local.runner import ConfigError
    from pi_lakeflow.local.query import list_tables

    config = _load(args.config)
    try:
        return list_tables(config)
    except ConfigError as error:
        raise UsageError(str(error)) from None


def cmd_report(args: argparse.Namespace) -> int:
    from pyspark.errors import PySparkException

    from pi_lakeflow.local.runner import ConfigError, spark_error
    from pi_lakeflow.local.report import write_report

    out = Path(args.out)
    if not out.parent.is_dir():
        raise UsageError(f"--out {args.out}: the folder {out.parent} does not exist")
    config = _load(args.config)
    try:  # no lock: it reads the table folders, beside a run (local.query)
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


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pi-lakeflow")
    except PackageNotFoundError:
        return "(not installed)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pi-lakeflow", description="PI System data into the lakehouse.")
    parser.add_argument("--version", action="version", version=f"pi-lakeflow {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    init = commands.add_parser("init", help="write a commented config file to start from",
                               description="Write a local config file with every setting, what it means and "
                                           "its default; the ones a first run needs are set.")
    init.add_argument("--url", default="https://pi.example.com/piwebapi", help="the PI Web API's base URL")
    init.add_argument("--out", default="pi.yml", help="file to write (default ./pi.yml; never overwritten)")
    init.set_defaults(run=cmd_init)
    check = commands.add_parser("check", help="check the config and the server without Spark",
                                description="Check the settings, the credential, reaching the server (TLS), "
                                            "authentication, the data server, its clock, the tag selection, the AF "
                                            "database and a read of one tag: one line each, stopping at the first "
                                            "failure (exit 2: the config; 1: the server).")
    check.add_argument("--config", required=True, help="the local config file (YAML; see README)")
    check.set_defaults(run=cmd_check)
    simulate = commands.add_parser("simulate", help="serve the PI Web API simulator (options: simulate --help)",
                                   add_help=False, description="Serve a simulated PI Web API.")
    simulate.set_defaults(run=cmd_simulate)
    demo = commands.add_parser("demo", help="run the pipeline on the embedded simulator and show what landed",
                               description="Start the embedded simulator, run the pipeline twice (back-fill, then "
                                           "incremental) into a local catalog, and show what landed.")
    demo.add_argument("--tags", type=_count, default=1_000, help="PI points (default 1000)")
    demo.add_argument("--hours", type=_count, default=6, help="hours of history to back-fill (default 6)")
    demo.add_argument("--state-dir", default="pi-lakeflow-demo",
                      help="folder for the local catalog and the demo's config (default ./pi-lakeflow-demo)")
    demo.set_defaults(run=cmd_demo)
    run = commands.add_parser("run", help="run the pipeline once on local Spark",
                              description="Run the declarative pipeline once (incremental) with local Spark.")
    run.add_argument("--config", required=True, help="the local config file (YAML; see README)")
    run.add_argument("--full-refresh", action="store_true", help="reset every table and read from pi.start again")
    run.add_argument("--allow-no-tags", action="store_true",
                     help="run even when the settings select no tag (else exit 2)")
    _loudness(run, verbose="also every flow event and Spark's start-up lines",
              quiet="only the summary line and what failed")
    run.add_argument("--summary-json", default=None, metavar="FILE",
                     help="also write the run's summary as JSON to FILE (status, values, tags, failures, tables)")
    run.set_defaults(run=cmd_run)
    stream = commands.add_parser("stream", help="run the real-time table until stopped (Ctrl-C)",
                                 description="Poll PI stream updates into pi_timeseries_updates, poll after poll, "
                                             "until Ctrl-C (the next start resumes); the config sets pi.tables: updates.")
    stream.add_argument("--config", required=True, help="the local config file (YAML; pi.tables: updates)")
    stream.add_argument("--allow-no-tags", action="store_true",
                        help="start even when the settings select no tag (else exit 2)")
    _loudness(stream, verbose="every poll, and Spark's own lines (else in state_dir/spark-output.log)",
              quiet="only the polls where a tag failed")
    stream.set_defaults(run=cmd_stream)
    query = commands.add_parser("query", help="print a SQL query over the local tables",
                                description="Print the result of a SQL query over the tables of a local run.")
    query.add_argument("sql", help='e.g. "SELECT name, count(*) FROM pi_timeseries GROUP BY name"')
    query.add_argument("--config", required=True, help="the local config file of the runs")
    query.add_argument("--format", choices=("table", "csv", "json"), default="table",
                       help="output: table, csv, or json (one object per line); default table")
    query.add_argument("--limit", type=_limit, default=1000,
                       help="print at most this many rows, with a note when there were more (default 1000; 0: all)")
    query.add_argument("--out", default=None, help="write the result to this file instead of the terminal")
    query.set_defaults(run=cmd_query)
    tables = commands.add_parser("tables", help="list the local tables with their row counts",
                                 description="List the tables of a local run with their row counts.")
    tables.add_argument("--config", required=True, help="the local config file of the runs")
    tables.set_defaults(run=cmd_tables)
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
    args, options = parser.parse_known_args(argv)
    if args.command == "simulate":
        args.options = options  # the simulator parses its own options
    elif options:
        parser.error(f"unrecognized arguments: {' '.join(options)}")
    try:
        return args.run(args)
    except UsageError as error:
        print(f"pi-lakeflow {args.command}: {error}", file=sys.stderr)
        return exits.USAGE
    except ModuleNotFoundError as error:
        package = (error.name or "").split(".")[0]
        if package not in LOCAL_EXTRA:
            raise
        print(f"pi-lakeflow {args.command}: needs {package}, which the local extra installs: "
              f"pip install 'pi-lakeflow[local]' (the deployable wheel leaves it out)", file=sys.stderr)
        return exits.USAGE


if __name__ == "__main__":
    sys.exit(main())
