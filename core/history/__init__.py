"""History kept in SQL (issue 23): per-minute rollups behind the dashboard's charts.

``grid`` buckets time (scaled by TIME_SCALE), ``tally`` counts in memory on the hot path,
``store`` flushes, prunes and reads the ``history_rollups`` rows, ``series`` turns rows
into the series the API and the charts show. Nothing here imports the engine.
"""
