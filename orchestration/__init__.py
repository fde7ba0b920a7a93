"""The Dagster code location of this repository (``orchestration.definitions.defs``).

Meltano's two loops as jobs and schedules, and a partitioned Currents backfill
(docs/orchestration.md).

The Dagster modules (definitions, backfill, jobs, schedules, ops) are thin; the others
(the Meltano project, the hour partitions' settings, the runner and its log reader) are
plain Python.
"""
