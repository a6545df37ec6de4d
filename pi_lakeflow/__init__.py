"""pi-lakeflow: PI System data into the lakehouse (command line and pipeline helpers)."""
