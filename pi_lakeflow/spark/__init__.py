"""The Spark glue: the Python data sources, the registry's tables as pipeline datasets, silver frames, quality rules."""
