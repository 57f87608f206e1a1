"""``evaluation``: one registered model version (a partition of ``model_versions``) scored
against the ground truth in the lake. Its table holds the per-item errors at IoU 0.5 (most
first); its commit holds the statistics, per class and overall, that the UI shows and
``bucketlake evaluate`` prints."""

import hashlib
import json
from typing import Any

from dagster import (
    AllPartitionMapping,
    AssetDep,
    AssetExecutionContext,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)

from ingest_assets.assets.charts import matrix_chart, pr_chart
from ingest_assets.assets.imports import imported_annotations, imported_predictions
from ingest_assets.assets.label_annotations import label_annotations
from ingest_assets.assets.metadata import Timer, column_schema, markdown_table
from ingest_assets.evaluation.report import PER_ITEM_SCHEMA, Report, evaluate_model
from ingest_assets.models.registry import registered, version_key
from ingest_assets.names import EVALUATION
from ingest_assets.partitions import model_versions
from resources.lake.catalog import partition_order
from resources.lake.resource import LakeResource
from resources.lake.tables import Lake

#: Bump when the same inputs would score differently.
EVALUATION_CODE_VERSION = "evaluation-1"
EVERY = AllPartitionMapping()


@asset(
    name=EVALUATION,
    partitions_def=model_versions,
    code_version=EVALUATION_CODE_VERSION,
    group_name="evaluation",
    kinds={"parquet"},
    deps=[
        AssetDep(imported_predictions, partition_mapping=EVERY),
        AssetDep(imported_annotations, partition_mapping=EVERY),
        AssetDep(label_annotations, partition_mapping=EVERY),
    ],
    description="One model version's predictions scored against the ground truth: the 12 COCO "
    "statistics per IoU type (as pycocotools gives them), AP and precision-recall per class, "
    "classification metrics, and per item the true positives, false positives and misses at "
    "IoU 0.5. Re-materialized by the evaluation sensor when either side changes.",
)
def evaluation(context: AssetExecutionContext, lake: LakeResource) -> MaterializeResult[None]:
    timer = Timer()
    tables = lake.lake()
    known = registered(tables)
    version = known.get(context.partition_key)
    if version is None:
        raise Failure(
            f"model version {context.partition_key} is not registered; register it with "
            "bucketlake add-model",
            allow_retries=False,
        )
    report = evaluate_model(tables, version.model, version.version)
    if not report.detection and report.classification is None:
        raise Failure(
            f"nothing to score for {context.partition_key}: {report.inputs.prediction_rows} "
            f"prediction rows and {report.inputs.ground_truth_rows} ground-truth rows "
            f"({dict(report.inputs.left_out) or 'none left out'}); import both first",
            allow_retries=False,
        )
    body = report.as_dict()
    per_item = report.per_item()
    fingerprint = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    key, run_id = context.partition_key, context.run.run_id
    with tables.writer(EVALUATION, key, fingerprint=fingerprint, run_id=run_id) as w:
        if per_item.num_rows > w.resume_from:
            w.write_chunk(per_item.slice(w.resume_from), input_end=per_item.num_rows)
        w.commit(PER_ITEM_SCHEMA, report=body)
    for iou_type, detection in report.detection.items():
        context.log.info(
            f"{key} {iou_type} ({detection.engine}): "
            + ", ".join(f"{k} {v:.3f}" for k, v in detection.stats_by_name().items())
        )
    return MaterializeResult(metadata=_metadata(tables, key, report, per_item, timer))


def read_report(lake: Lake, key: str) -> dict[str, Any] | None:
    """The report of the last committed evaluation of model version ``key``."""
    commit = lake.read_commit(EVALUATION, key)
    return None if commit is None else commit.extra.get("report")


def _metadata(lake: Lake, key: str, report: Report, per_item: Any, timer: Timer) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "dagster/row_count": per_item.num_rows,
        "dagster/column_schema": column_schema(PER_ITEM_SCHEMA),
        "model": report.model,
        "version": report.version,
        "images": len(report.inputs.images),
        "ground_truth_rows": report.inputs.ground_truth_rows,
        "prediction_rows": report.inputs.prediction_rows,
        "left_out": MetadataValue.json(dict(report.inputs.left_out)),
        "table": MetadataValue.path(lake.table_uri(EVALUATION, key)),
        "worst_items": markdown_table(
            per_item.slice(0, 10).to_pylist(), ["key", "iou_type", "tp", "fp", "fn", "errors"]
        ),
        **timer.metadata(report.inputs.prediction_rows, "predictions"),
    }
    for iou_type, d in report.detection.items():
        metadata[f"{iou_type}_AP"] = d.stats[0]
        metadata[f"{iou_type}_stats"] = MetadataValue.md(_stats_table(d.stats_by_name(), d.engine))
        metadata[f"{iou_type}_per_class"] = markdown_table(
            sorted(d.per_class, key=lambda c: c["AP"])[:30],
            ["name", "AP", "AP50", "tp", "fp", "fn", "ground_truth"],
        )
        names = {c["category_id"]: c["name"] for c in d.per_class}
        # The ten classes with the most ground truth: the curves most worth reading.
        support = {c["category_id"]: c["ground_truth"] for c in d.per_class}
        shown = sorted(d.pr_curves, key=lambda c: (-support.get(c, 0), c))[:10]
        metadata[f"{iou_type}_pr_curves"] = MetadataValue.md(
            pr_chart(
                {names[c]: d.pr_curves[c] for c in shown},
                d.recall_thresholds,
                title=f"{key} {iou_type}: precision-recall at IoU 0.5",
            )
        )
    c = report.classification
    if c is not None:
        metadata["accuracy"] = c.accuracy
        metadata["classification"] = markdown_table(
            c.per_class[:30], ["label", "precision", "recall", "f1", "support"]
        )
        metadata["confusion_matrix"] = MetadataValue.md(
            matrix_chart(c.labels, c.confusion, title=f"{key}: confusion matrix")
        )
    comparison = _comparison(lake, report)
    if comparison:
        metadata["versions"] = MetadataValue.md(comparison)
    return metadata


def _stats_table(stats: dict[str, float], engine: str) -> str:
    lines = ["| statistic | value |", "|---|---:|"]
    lines += [f"| {name} | {value:.4f} |" for name, value in stats.items()]
    return "\n".join(lines) + f"\n\nengine: {engine}"


def _comparison(lake: Lake, report: Report) -> str:
    """AP per IoU type across the model's evaluated versions, with the change from the
    version before each."""
    versions = sorted(
        (v for v in registered(lake).values() if v.model == report.model),
        key=lambda v: partition_order(v.version),
    )
    rows: list[tuple[str, dict[str, float]]] = []
    for v in versions:
        body = report.as_dict(curves=False) if v.version == report.version else None
        body = body or read_report(lake, version_key(v.model, v.version))
        if body is None:
            continue
        rows.append((v.version, {t: body[t]["stats"][0] for t in stat_types(body)}))
    if len(rows) < 2:
        return ""
    types = sorted({t for _, aps in rows for t in aps})
    lines = ["| version | " + " | ".join(f"{t} AP | change" for t in types) + " |"]
    lines.append("|---|" + "---:|---:|" * len(types))
    previous: dict[str, float] = {}
    for version, aps in rows:
        cells = []
        for t in types:
            ap = aps.get(t)
            change = f"{ap - previous[t]:+.4f}" if ap is not None and t in previous else ""
            cells += [f"{ap:.4f}" if ap is not None else "", change]
            if ap is not None:
                previous[t] = ap
        lines.append(f"| {version} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def stat_types(body: dict[str, Any]) -> list[str]:
    return [t for t in ("bbox", "segm", "keypoints") if t in body]
