"""What the pipeline keeps under ``pi.state_path`` between batches: plain files, no Spark.

``files`` (write whole, read whole, probe, compression: the bottom, which ``config`` uses too),
``offsets`` (a folder per offset, pruned to the newest few: the three stores share it),
``store`` (the time-series source's plans and outcomes), ``catalog_log`` (the failed items of
each catalog table's latest read) and ``log`` (the tables made from the state: the ingestion log
and the tag cursors).
"""
