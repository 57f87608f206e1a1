"""Names of assets (and so of their lake tables), jobs and run tags: each defined once here."""

RAW_ITEMS = "raw_items"
DATASET_ITEMS = "dataset_items"
DUPLICATES = "duplicates"
LABEL_ANNOTATIONS = "label_annotations"
IMPORTED_ANNOTATIONS = "imported_annotations"
IMPORTED_PREDICTIONS = "imported_predictions"
EVALUATION = "evaluation"
EMBEDDINGS = "embeddings"
#: The asset group of the batch assets that run models (embeddings, predictions_<model>).
INFERENCE_GROUP = "inference"


def predictions_asset(model: str) -> str:
    """The pre-tagging asset of a configured model (a name that is a valid asset key)."""
    return "predictions_" + model.replace("-", "_")


INGEST_JOB = "ingest_job"
CHECKS_JOB = "dataset_checks_job"
IMPORT_ANNOTATIONS_JOB = "import_annotations_job"
IMPORT_PREDICTIONS_JOB = "import_predictions_job"
EVALUATION_JOB = "evaluation_job"

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
