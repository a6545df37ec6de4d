"""The ``pi-lakeflow`` command: one console script, one subcommand per job.

A failure pi-lakeflow names (pi_lakeflow.errors.PiLakeflowError) ends the command with its one
line and its exit status, caught once in :func:`main`: bad input (a UsageError) exits 2; the
statuses are pi_lakeflow.exits' (0 complete, 1 failed, 2 bad input, 3 completed with failures).
"""

from __future__ import annotations

import sys

from pi_lakeflow import exits
from pi_lakeflow.cli.arguments import parser
from pi_lakeflow.errors import PiLakeflowError

#: Top-level modules that only the ``local`` extra installs (the deployable wheel leaves them out).
LOCAL_EXTRA = ("pyspark", "pi_simulator", "yaml", "plotly", "databricks")


def main(argv: list[str] | None = None) -> int:
    command_line = parser()
    args, options = command_line.parse_known_args(argv)
    if args.command == "simulate":
        args.options = options  # the simulator parses its own options
    elif options:
        command_line.error(f"unrecognized arguments: {' '.join(options)}")
    try:
        return args.run(args)
    except PiLakeflowError as error:
        print(f"pi-lakeflow {args.command}: {error}", file=sys.stderr)
        return error.status
    except ModuleNotFoundError as error:
        package = (error.name or "").split(".")[0]
        if package not in LOCAL_EXTRA:
            raise
        print(f"pi-lakeflow {args.command}: needs {package}, which the local extra installs: "
              f"pip install 'pi-lakeflow[local]' (the deployable wheel leaves it out)", file=sys.stderr)
        return exits.USAGE
