"""Names of assets (and so of their lake tables), jobs and run tags: each defined once here."""

from resources.config_inference import predictions_asset

__all__ = ["predictions_asset"]  # the one asset name the config shapes, defined beside it

RAW_ITEMS = "raw_items"
DATASET_ITEMS = "dataset_items"
DUPLICATES = "duplicates"
LABEL_ANNOTATIONS = "label_annotations"
IMPORTED_ANNOTATIONS = "imported_annotations"
IMPORTED_PREDICTIONS = "imported_predictions"
EVALUATION = "evaluation"
EMBEDDINGS = "embeddings"
SELECTION = "selection"
#: The asset group of the batch assets that run models (embeddings, predictions_<model>).
INFERENCE_GROUP = "inference"


INGEST_JOB = "ingest_job"
CHECKS_JOB = "dataset_checks_job"
IMPORT_ANNOTATIONS_JOB = "import_annotations_job"
IMPORT_PREDICTIONS_JOB = "import_predictions_job"
EVALUATION_JOB = "evaluation_job"
SELECTION_JOB = "selection_job"

#: A batch whose runs failed this many times is not run again without being asked to.
MAX_ATTEMPTS = 3

#: Tags on every ingest run.
PARTITION_TAG = "dagster/partition"
SOURCE_TAG = "bucketlake/source"
ATTEMPT_TAG = "bucketlake/attempt"
LAUNCHED_BY_TAG = "bucketlake/launched_by"
#: Dagster's run-retry setting per run: a healer that runs a batch again itself sets it to 0.
MAX_RETRIES_TAG = "dagster/max_retries"
#: Set by Dagster on a failed run when its run-retry daemon will retry it.
WILL_RETRY_TAG = "dagster/will_retry"
