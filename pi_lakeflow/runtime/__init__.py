"""What runs inside the pipeline, on the driver and in Spark tasks, with no Spark import: reads, plans, state."""
