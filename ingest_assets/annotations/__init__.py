"""Label and prediction files: their records, one importer and exporter per format (no Dagster)."""
