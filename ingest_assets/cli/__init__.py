"""The ``bucketlake`` command: a thin face over the same definitions and Dagster instance."""
