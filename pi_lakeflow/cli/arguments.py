"""The ``pi-lakeflow`` command line: a subcommand per job, each declared by its ``_add_*`` function
and run by its ``cmd_*`` function (commands.py)."""

from __future__ import annotations

import argparse

from pi_lakeflow.cli.commands import (cmd_check, cmd_demo, cmd_init, cmd_query, cmd_report, cmd_run, cmd_simulate,
                                      cmd_stream, cmd_tables, cmd_workspace)


def _whole_number(low: int, meaning: str = ""):
    """A parser of whole numbers of ``low`` or more; ``meaning`` says what ``low`` stands for."""
    def parse(text: str) -> int:
        if not text.strip().isdigit() or int(text) < low:
            raise argparse.ArgumentTypeError(f"'{text}' is not a whole number of {low} or more{meaning}")
        return int(text)
    return parse


_count = _whole_number(1)  # a demo size
_limit = _whole_number(0, " (0: no limit)")  # a row limit


def _loudness(command: argparse.ArgumentParser, verbose: str, quiet: str) -> None:
    """A command's --verbose and --quiet (one or neither)."""
    loudness = command.add_mutually_exclusive_group()
    loudness.add_argument("--verbose", action="store_true", help=verbose)
    loudness.add_argument("--quiet", action="store_true", help=quiet)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pi-lakeflow")
    except PackageNotFoundError:
        return "(not installed)"


def parser() -> argparse.ArgumentParser:
    """The command line: a subcommand per job, each declared by its ``_add_*`` function."""
    parser = argparse.ArgumentParser(prog="pi-lakeflow", description="PI System data into the lakehouse.")
    parser.add_argument("--version", action="version", version=f"pi-lakeflow {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in (_add_init, _add_check, _add_simulate, _add_demo, _add_run, _add_stream, _add_query, _add_tables,
                _add_report, _add_workspace):
        add(commands)
    return parser


def _add_init(commands) -> None:
    init = commands.add_parser("init", help="write a commented config file to start from",
                               description="Write a local config file with every setting, what it means and "
                                           "its default; the ones a first run needs are set.")
    init.add_argument("--url", default="https://pi.example.com/piwebapi", help="the PI Web API's base URL")
    init.add_argument("--out", default="pi.yml", help="file to write (default ./pi.yml; never overwritten)")
    init.set_defaults(run=cmd_init)


def _add_check(commands) -> None:
    check = commands.add_parser("check", help="check the config and the server without Spark",
                                description="Check the settings, the credential, reaching the server (TLS), "
                                            "authentication, the data server, its clock, the tag selection, the AF "
                                            "database and a read of one tag: one line each, stopping at the first "
                                            "failure (exit 2: the config; 1: the server).")
    check.add_argument("--config", required=True, help="the local config file (YAML; see README)")
    check.set_defaults(run=cmd_check)


def _add_simulate(commands) -> None:
    simulate = commands.add_parser("simulate", help="serve the PI Web API simulator (options: simulate --help)",
                                   add_help=False, description="Serve a simulated PI Web API.")
    simulate.set_defaults(run=cmd_simulate)


def _add_demo(commands) -> None:
    demo = commands.add_parser("demo", help="run the pipeline on the embedded simulator and show what landed",
                               description="Start the embedded simulator, run the pipeline twice (back-fill, then "
                                           "incremental) into a local catalog, and show what landed.")
    demo.add_argument("--tags", type=_count, default=1_000, help="PI points (default 1000)")
    demo.add_argument("--hours", type=_count, default=6, help="hours of history to back-fill (default 6)")
    demo.add_argument("--state-dir", default="pi-lakeflow-demo",
                      help="folder for the local catalog and the demo's config (default ./pi-lakeflow-demo)")
    demo.set_defaults(run=cmd_demo)


def _add_run(commands) -> None:
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


def _add_stream(commands) -> None:
    stream = commands.add_parser("stream", help="run the real-time table until stopped (Ctrl-C)",
                                 description="Poll PI stream updates into pi_timeseries_updates, poll after poll, "
                                             "until Ctrl-C (the next start resumes); the config sets pi.tables: updates.")
    stream.add_argument("--config", required=True, help="the local config file (YAML; pi.tables: updates)")
    stream.add_argument("--allow-no-tags", action="store_true",
                        help="start even when the settings select no tag (else exit 2)")
    _loudness(stream, verbose="every poll, and Spark's own lines (else in state_dir/spark-output.log)",
              quiet="only the polls where a tag failed")
    stream.set_defaults(run=cmd_stream)


def _add_query(commands) -> None:
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


def _add_tables(commands) -> None:
    tables = commands.add_parser("tables", help="list the local tables with their row counts",
                                 description="List the tables of a local run with their row counts.")
    tables.add_argument("--config", required=True, help="the local config file of the runs")
    tables.set_defaults(run=cmd_tables)


def _add_report(commands) -> None:
    report = commands.add_parser("report", help="write the quality dashboard's panels as one HTML file",
                                 description="The quality dashboard (pass rate per rule, quarantine, ingestion, "
                                             "freshness, failed tags) from the local tables, as one HTML file.")
    report.add_argument("--config", required=True, help="the local config file of the runs")
    report.add_argument("--out", default="pi-lakeflow-report.html", help="file to write (default ./pi-lakeflow-report.html)")
    report.set_defaults(run=cmd_report)


def _add_workspace(commands) -> None:
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
