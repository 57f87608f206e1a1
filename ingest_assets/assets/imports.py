"""``imported_annotations`` and ``imported_predictions``: one label or prediction file per
partition of ``imports``, its records tied to the current items. The file is read whole or not
at all: a bad file fails the run naming file, record and field, and leaves nothing visible; a
new version of the same file replaces that import's rows."""

import hashlib
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)

from ingest_assets.annotations.importing import (
    IMPORTS_CODE_VERSION,
    ImportSpec,
    Tally,
    import_chunks,
    load_spec,
)
from ingest_assets.annotations.matching import ItemIndex
from ingest_assets.annotations.reading import parse_import, save_coco_tables
from ingest_assets.annotations.records import LabelFileError
from ingest_assets.annotations.table import ANNOTATIONS_SCHEMA, PREDICTIONS_SCHEMA
from ingest_assets.assets.charts import bar_chart
from ingest_assets.assets.label_files import read_label_file
from ingest_assets.assets.metadata import Timer, column_schema, markdown_table
from ingest_assets.models.registry import version_key
from ingest_assets.names import DATASET_ITEMS, IMPORTED_ANNOTATIONS, IMPORTED_PREDICTIONS
from ingest_assets.partitions import imports
from resources.lake.resource import LakeResource
from resources.lake.tables import Lake

ITEM_COLUMNS = ["item_id", "key", "reference_id", "width", "height", "status"]


def current_items(lake: Lake) -> ItemIndex:
    """Every current item an import may name (tombstoned ones are gone from the source)."""
    if not lake.committed_partitions(DATASET_ITEMS):
        return ItemIndex([])
    rows = (
        row
        for chunk in lake.iter_current(DATASET_ITEMS, columns=ITEM_COLUMNS)
        for row in chunk.to_pylist()
        if row["status"] != "missing"
    )
    return ItemIndex.of_rows(rows)


def run_import(
    context: AssetExecutionContext, lake: Lake, asset_name: str
) -> MaterializeResult[None]:
    timer = Timer()
    spec = load_spec(lake.store, context.partition_key)
    wanted = IMPORTED_PREDICTIONS if spec.predictions else IMPORTED_ANNOTATIONS
    if wanted != asset_name:
        raise Failure(
            f"import {spec.key} ({spec.uri}) holds "
            f"{'predictions' if spec.predictions else 'annotations'}: materialize {wanted} for "
            "it",
            allow_retries=False,
        )
    files = read_label_file(spec)
    fingerprint = _fingerprint(spec, files.digest)
    tally = Tally()
    schema = PREDICTIONS_SCHEMA if spec.predictions else ANNOTATIONS_SCHEMA
    with lake.writer(asset_name, spec.key, fingerprint=fingerprint, run_id=context.run.run_id) as w:
        try:
            parsed = parse_import(spec, files, lake)
            index = current_items(lake)
            for table, read in import_chunks(parsed, index, spec, tally, skip=w.resume_from):
                if read > w.resume_from:
                    w.write_chunk(table, input_end=read)
                context.log.info(
                    f"{spec.key}: {tally.records} records read, {tally.imported} tied to items"
                )
        except LabelFileError as exc:
            raise Failure(
                f"{exc} (nothing of {spec.uri} was imported)", allow_retries=False
            ) from None
        w.commit(schema, tally=tally.summary(), uri=spec.uri, format=spec.format)
    if spec.format == "coco":
        save_coco_tables(lake, spec.key, parsed)
    _say_unmatched(context, spec, tally)
    return MaterializeResult(metadata=_metadata(lake, asset_name, spec, tally, schema, timer))


def _fingerprint(spec: ImportSpec, digest: str) -> str:
    text = f"{spec.to_json().decode()}\x00{digest}\x00{IMPORTS_CODE_VERSION}"
    return hashlib.sha256(text.encode()).hexdigest()


def _say_unmatched(context: AssetExecutionContext, spec: ImportSpec, tally: Tally) -> None:
    for found in tally.examples_unmatched:
        context.log.warning(f"{spec.uri}: {found.where}: {found.reference}: {found.reason}")
    if tally.unmatched > len(tally.examples_unmatched):
        context.log.warning(f"{spec.uri}: {tally.unmatched} records matched no item in all")


def _metadata(
    lake: Lake, asset_name: str, spec: ImportSpec, tally: Tally, schema: Any, timer: Timer
) -> dict[str, Any]:
    columns = ["where", "reference", "reason"]
    metadata: dict[str, Any] = {
        "dagster/row_count": tally.imported,
        "dagster/column_schema": column_schema(schema),
        "file": spec.uri,
        "format": spec.format,
        **{k: v for k, v in tally.summary().items() if k != "labels"},
        "labels": MetadataValue.json(dict(tally.labels.most_common())),
        "table": MetadataValue.path(lake.table_uri(asset_name, spec.key)),
        **timer.metadata(tally.records, "records"),
    }
    if tally.labels:
        metadata["class_histogram"] = bar_chart(
            tally.labels, title=f"{spec.key}: records per class"
        )
    if tally.examples_unmatched:
        metadata["unmatched_examples"] = markdown_table(
            [vars(u) for u in tally.examples_unmatched], columns
        )
    if tally.examples_rejected:
        metadata["rejected_examples"] = markdown_table(
            [vars(u) for u in tally.examples_rejected], columns
        )
    if spec.model and spec.version:
        metadata["model_version"] = version_key(spec.model, spec.version)
    return metadata


def _import_asset(name: str, description: str) -> AssetsDefinition:
    """One of the two import assets: they differ only in what their files hold."""

    @asset(
        name=name,
        partitions_def=imports,
        code_version=IMPORTS_CODE_VERSION,
        group_name="labels",
        kinds={"parquet"},
        description=description,
    )
    def imported(context: AssetExecutionContext, lake: LakeResource) -> MaterializeResult[None]:
        return run_import(context, lake.lake(), name)

    return imported


imported_annotations = _import_asset(
    IMPORTED_ANNOTATIONS,
    "Ground truth from one label file (COCO, YOLO, Pascal VOC, CSV, Label Studio), each record "
    "tied to its item: boxes, masks, keypoints and classes as the file gives them.",
)
imported_predictions = _import_asset(
    IMPORTED_PREDICTIONS,
    "One model version's predictions from one file, tied to items: as annotations, with "
    "confidence, model and version.",
)
