"""Local runs on open-source Spark: the config file and runner, the engine, stream, query, report and demo."""
