"""Exit statuses of ``pi-lakeflow``, in one place (the README's table lists them)."""

#: Everything asked for was done: every selected tag and catalog item was read.
OK = 0
#: The run, stream or query failed; the last line says why.
FAILED = 1
#: Bad input: the command line, the config file, a setting, a secret reference, a state_dir in use.
USAGE = 2
#: The run completed, but some tags or catalog items failed (they are listed, with the server's
#: message, on the terminal, in pi_ingestion_log and pi_catalog_log); the next run retries them.
PARTIAL = 3
