"""Partition sets (DESIGN §4). All dynamic: partitions appear as data arrives."""

from dagster import DynamicPartitionsDefinition

#: One partition per batch of claimed objects, keyed ``<source>_<6-digit seq>``.
BATCHES = "batches"
batches = DynamicPartitionsDefinition(name=BATCHES)

#: One partition per registered model version, keyed ``<model>_<version>`` (the registry's key).
MODEL_VERSIONS = "model_versions"
model_versions = DynamicPartitionsDefinition(name=MODEL_VERSIONS)

#: One partition per imported label or prediction file (``import_key`` of its URI).
IMPORTS = "imports"
imports = DynamicPartitionsDefinition(name=IMPORTS)

#: One partition per selection run, keyed ``sel0001``, ``sel0002``, ...
SELECTION_RUNS = "selection_runs"
selection_runs = DynamicPartitionsDefinition(name=SELECTION_RUNS)
