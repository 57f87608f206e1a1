"""``imported_annotations`` and ``imported_predictions``: one label or prediction file per
partition of ``imports``, its records tied to the current items. The file is read whole or not
at all: a bad file fails the run naming file, record and field, and leaves nothing visible; a
new version of the same file replaces that import's rows."""

import hashlib
import os
import time
from collections.abc import Callable
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetMaterialization,
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
from ingest_assets.annotations.linking import Ties, next_linked_batch, tie_images
from ingest_assets.annotations.matching import ItemIndex
from ingest_assets.annotations.reading import LabelFiles, parse_import, save_coco_tables
from ingest_assets.annotations.records import LabelFileError, Parsed
from ingest_assets.annotations.table import ANNOTATIONS_SCHEMA, PREDICTIONS_SCHEMA
from ingest_assets.assets.charts import bar_chart
from ingest_assets.assets.label_files import read_label_file
from ingest_assets.assets.metadata import Timer, column_schema, markdown_table
from ingest_assets.items.rows import ITEMS_SCHEMA
from ingest_assets.models.registry import version_key
from ingest_assets.names import DATASET_ITEMS, IMPORTED_ANNOTATIONS, IMPORTED_PREDICTIONS
from ingest_assets.partitions import BATCHES, imports
from ingest_assets.progress import format_duration
from resources.errors import LeaseHeld
from resources.lake.resource import LakeResource
from resources.lake.tables import Lake
from resources.stores.resource import SourcesResource

ITEM_COLUMNS = ["item_id", "key", "reference_id", "source", "width", "height", "status"]


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
    context: AssetExecutionContext, lake: Lake, sources: SourcesResource, asset_name: str
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
    options = sources.source(spec.source) if spec.source else None
    with read_label_file(spec, options) as files:
        tally, ties = _write_import(context, lake, spec, files, asset_name)
    _say_unmatched(context, spec, tally)
    schema = PREDICTIONS_SCHEMA if spec.predictions else ANNOTATIONS_SCHEMA
    metadata = _metadata(lake, asset_name, spec, tally, schema, timer)
    if spec.format == "coco":
        metadata.update(ties.summary())
    return MaterializeResult(metadata=metadata)


def _write_import(
    context: AssetExecutionContext, lake: Lake, spec: ImportSpec, files: LabelFiles, asset: str
) -> tuple[Tally, Ties]:
    """Parse the file, tie its records to items (linking images where the import does) and
    commit its rows; a bad file raises Failure and leaves nothing visible."""
    fingerprint = _fingerprint(spec, files.digest)
    tally = Tally()
    schema = PREDICTIONS_SCHEMA if spec.predictions else ANNOTATIONS_SCHEMA
    with lake.writer(asset, spec.key, fingerprint=fingerprint, run_id=context.run.run_id) as w:
        try:
            parsed = parse_import(spec, files, lake)
            index = current_items(lake)
            ties = _ties(lake, spec, parsed, index)
            progress = FileProgress(files, context.log.info, spec.key)
            chunks = import_chunks(parsed, index, spec, tally, tied=ties.items, skip=w.resume_from)
            for table, read in chunks:
                if read > w.resume_from:
                    w.write_chunk(table, input_end=read)
                progress.say(tally)
        except LabelFileError as exc:
            raise Failure(
                f"{exc} (nothing of {spec.uri} was imported)", allow_retries=False
            ) from None
        # The items first, so that every committed annotation names an item in the lake.
        if ties.rows.count:
            _write_linked_items(context, lake, spec, ties, fingerprint)
        if spec.format == "coco":
            save_coco_tables(lake, spec.key, parsed, ties.item_ids)
        summary = {"tally": tally.summary(), "images": ties.summary()}
        w.commit(schema, **summary, uri=spec.uri, format=spec.format)
    return tally, ties


class FileProgress:
    """A line per chunk of records: how many, how far into the file, the rate and the ETA."""

    def __init__(self, files: LabelFiles, emit: Callable[[str], None], key: str) -> None:
        streams = [f for f in files.files.values() if not isinstance(f, bytes)]
        self.stream = streams[0] if len(streams) == 1 else None
        self.size = os.fstat(self.stream.fileno()).st_size if self.stream else 0
        self.emit, self.key, self.start = emit, key, time.monotonic()

    def say(self, tally: Tally) -> None:
        elapsed = max(time.monotonic() - self.start, 1e-9)
        line = (
            f"{self.key}: {tally.records:,} records read, {tally.imported:,} tied to items, "
            f"{tally.records / elapsed:,.0f}/s"
        )
        if self.stream is not None and self.size:
            done = min(self.stream.tell() / self.size, 1.0)
            eta = format_duration(elapsed * (1 - done) / done) if done > 0 else "unknown"
            line += f", {100 * done:.0f}% of the file, ETA {eta}"
        self.emit(line)


def _ties(lake: Lake, spec: ImportSpec, parsed: Parsed, index: ItemIndex) -> Ties:
    """The item each image of the file names; a COCO import that links adds linked items."""
    if spec.format != "coco":
        return Ties.of_ids(parsed.item_ids, index)
    batch = next_linked_batch(lake.committed_partitions(DATASET_ITEMS)) if spec.link else None
    return tie_images(parsed.images, index, spec, batch=batch)


def _write_linked_items(
    context: AssetExecutionContext, lake: Lake, spec: ImportSpec, ties: Ties, fingerprint: str
) -> None:
    """Commit the import's linked items as a ``dataset_items`` partition of their own, and
    show it in the UI as materialized by this run."""
    assert ties.batch is not None
    batch, table = ties.batch, ties.rows.take()
    try:
        with lake.writer(
            DATASET_ITEMS, batch, fingerprint=fingerprint, run_id=context.run.run_id
        ) as writer:
            if table.num_rows > writer.resume_from:
                writer.write_chunk(table.slice(writer.resume_from), input_end=table.num_rows)
            writer.commit(ITEMS_SCHEMA, linked_by=spec.uri, import_key=spec.key)
    except LeaseHeld as exc:
        raise Failure(
            f"{exc}: another import is linking items as {batch} at this moment; import "
            f"{spec.uri} again when it is done (nothing of it was imported)"
        ) from None
    context.instance.add_dynamic_partitions(BATCHES, [batch])
    context.log.info(
        f"{spec.key}: linked {ties.linked} images as new items and updated {ties.resized} "
        f"({DATASET_ITEMS}/{batch}); nothing was fetched"
    )
    context.log_event(
        AssetMaterialization(
            asset_key=DATASET_ITEMS,
            partition=batch,
            description=f"Items linked by the COCO import {spec.uri}: the images no item "
            "answered to, their width and height as the file gives them; nothing fetched.",
            metadata={
                "dagster/row_count": table.num_rows,
                "linked_by": spec.uri,
                "import": spec.key,
                "new_items": ties.linked,
                "resized_items": ties.resized,
                "table": MetadataValue.path(lake.table_uri(DATASET_ITEMS, batch)),
                "preview": markdown_table(
                    table.slice(0, 10).to_pylist(), ["key", "width", "height"]
                ),
            },
        )
    )


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
    def imported(
        context: AssetExecutionContext, lake: LakeResource, sources: SourcesResource
    ) -> MaterializeResult[None]:
        return run_import(context, lake.lake(), sources, name)

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
