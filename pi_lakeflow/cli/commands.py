"""What each ``pi-lakeflow`` subcommand does, given its parsed arguments (arguments.py); each
returns the exit status, or raises a PiLakeflowError that the CLI's main prints in one line."""

from __future__ import annotations

import argparse
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from pi_lakeflow import exits
from pi_lakeflow.errors import UsageError


def cmd_simulate(args: argparse.Namespace) -> int:
    """The simulator's own command line (pi_simulator.command), with the arguments after ``simulate``."""
    from pi_simulator.command import main as simulate
    return simulate(args.options, prog="pi-lakeflow simulate")


def cmd_demo(args: argparse.Namespace) -> int:
    """Start the embedded simulator, run the pipeline on it twice, show what landed."""
    from pi_lakeflow.local.demo import run_demo

    return run_demo(args.tags, Path(args.state_dir), args.hours)


def _load(path: str):
    from pi_lakeflow.local.config import load_config

    return load_config(path)


def _preflight(config, command: str, missing_note: str = "", allow_no_tags: bool = False) -> bool:
    """Whether the credentials and the server are good (else one message: before Spark starts);
    warns of selected names the server lacks. Bad settings, a secret reference that is not set
    and a selection of no tag (unless ``allow_no_tags``) are UsageError."""
    from pi_client import PiError
    from pi_lakeflow.local.runner import preflight

    try:
        selected, missing = preflight(config)
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
    changes it; a state_dir that another process holds is a UsageError (StateInUse)."""
    from pi_lakeflow.local.config import state_lock

    with state_lock(config, command):
        yield


def _output(args: argparse.Namespace) -> str:
    """quiet, normal or verbose, from a command's --quiet and --verbose (_loudness)."""
    return "verbose" if args.verbose else "quiet" if args.quiet else "normal"


def cmd_stream(args: argparse.Namespace) -> int:
    from pyspark.errors import PySparkException

    from pi_lakeflow.local.spark_env import spark_error
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
    from pi_lakeflow.config.settings import parse
    from pi_lakeflow.errors import SettingsError
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
    from pi_lakeflow.local.query import run_query

    config = _load(args.config)
    out = Path(args.out) if args.out else None
    if out is not None and not out.parent.is_dir():
        raise UsageError(f"--out {args.out}: the folder {out.parent} does not exist")
    return run_query(config, args.sql, args.format, args.limit, out)  # no lock: it reads beside a run (local.query)


def cmd_tables(args: argparse.Namespace) -> int:
    from pi_lakeflow.local.query import list_tables

    return list_tables(_load(args.config))


def cmd_report(args: argparse.Namespace) -> int:
    from pyspark.errors import PySparkException

    from pi_lakeflow.local.report import write_report
    from pi_lakeflow.local.spark_env import spark_error

    out = Path(args.out)
    if not out.parent.is_dir():
        raise UsageError(f"--out {args.out}: the folder {out.parent} does not exist")
    config = _load(args.config)
    try:  # no lock: it reads the table folders, beside a run (local.query)
        found = write_report(config, out)
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

    from pi_lakeflow.workspace import pipeline_status, store_secrets

    try:
        client = _workspace_client(args)
        if args.action == "secrets":
            lines = store_secrets(client, args.scope, args.auth, _read_secret)
        else:
            lines = pipeline_status(client, args.pipeline, args.warehouse).lines()
    except (DatabricksError, ValueError) as error:  # the SDK's errors (a WorkspaceError reaches main)
        print(f"pi-lakeflow workspace {args.action}: {str(error).splitlines()[0]}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0
