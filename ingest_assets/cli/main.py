"""``bucketlake``: sync sources, register models, import and export labels, print the instance
folder. Exit 0 only on success."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import traceback
from collections.abc import Sequence
from typing import Any

from ingest_assets.annotations.records import FORMATS
from ingest_assets.names import MAX_ATTEMPTS
from resources.errors import BucketlakeError, ConfigError

#: ``ingest_assets.annotations.exporting.EXPORT_FORMATS``, named here so that parsing the
#: command line does not load Pyarrow (a test checks the two agree).
EXPORT_FORMATS = ("coco", "yolo", "voc", "csv", "labelstudio")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bucketlake",
        description="Bucketlake: bucket objects become a curated dataset, as Dagster assets.",
    )
    parser.add_argument("--verbose", action="store_true", help="show details of errors")
    commands = parser.add_subparsers(dest="command", required=True)
    sync = commands.add_parser(
        "sync", help="claim new objects now and run ingest_job for each new or unfinished batch"
    )
    sync.add_argument("--source", action="append", help="only this source (repeatable)")
    sync.add_argument(
        "--jobs",
        type=int,
        default=max(1, (os.cpu_count() or 2) // 2),
        help="batches run at the same time (default: half the cores)",
    )
    sync.add_argument(
        "--retry-failed",
        action="store_true",
        help=f"also run batches whose runs failed {MAX_ATTEMPTS} times or more",
    )
    add_model = commands.add_parser(
        "add-model", help="register a model version (predictions and evaluation name it)"
    )
    add_model.add_argument("name", help="the model's name")
    add_model.add_argument("--version", required=True, help="the version to register")
    add_model.add_argument("--weights", help="where its weights are (a path or URI)")
    add_model.add_argument(
        "--task",
        choices=["embedding", "classification", "detection"],
        default="detection",
        help="what the model gives (default: detection)",
    )
    add_model.add_argument("--labels", help="its class names, comma-separated, in order")
    imported = commands.add_parser(
        "import", help="import a label or prediction file (COCO, YOLO, VOC, CSV, Label Studio)"
    )
    imported.add_argument("path", help="the file (for YOLO: its classes.txt or data.yaml)")
    imported.add_argument("--format", required=True, choices=list(FORMATS))
    imported.add_argument("--model", help="predictions: the registered model they come from")
    imported.add_argument("--version", help="predictions: that model's version")
    imported.add_argument(
        "--boxes",
        choices=["keep", "clip", "reject"],
        default="keep",
        help="boxes reaching outside their image: kept as given (default), clipped or rejected",
    )
    imported.add_argument(
        "--source",
        help="the configured source the file is in: its endpoint and credentials read it",
    )
    linking = imported.add_mutually_exclusive_group()
    linking.add_argument(
        "--link",
        action="store_true",
        default=None,
        help="COCO: link the images no item answers to as items of their own (nothing is "
        "fetched; the default where no source is configured)",
    )
    linking.add_argument(
        "--no-link",
        dest="link",
        action="store_false",
        help="COCO: tie records to ingested items only; report the others as unmatched",
    )
    imported.add_argument(
        "--images",
        help="COCO: the folder or prefix the images' relative file names are in (default: the "
        "file's folder); implies --link",
    )
    exported = commands.add_parser(
        "export", help="write the current items and their annotations in a label format"
    )
    exported.add_argument("out", help="the folder to write into (missing or empty)")
    exported.add_argument("--format", required=True, choices=list(EXPORT_FORMATS))
    exported.add_argument("--split", action="append", help="only this split (repeatable)")
    exported.add_argument("--source", action="append", help="only this source (repeatable)")
    evaluate = commands.add_parser(
        "evaluate", help="score a model version's predictions against the ground truth"
    )
    evaluate.add_argument("--model", required=True, help="the registered model")
    evaluate.add_argument("--version", help="its version (default: the latest registered)")
    evaluate.add_argument(
        "--json", action="store_true", help="print the report as one JSON object on stdout"
    )
    _select_parser(commands)
    commands.add_parser("home", help="create the Dagster instance folder if needed; print it")
    verify = commands.add_parser(
        "verify-source", help="list a source and read one object, before a large ingestion"
    )
    verify.add_argument("name", help="the source's name in the config")
    return parser


def _select_parser(commands: Any) -> None:
    chosen = commands.add_parser(
        "select", help="add the items most worth labelling next to the selection (one run)"
    )
    size = chosen.add_mutually_exclusive_group(required=True)
    size.add_argument("--n-samples", type=int, help="items this run adds")
    size.add_argument("--proportion", type=float, help="or: this share of the candidates")
    chosen.add_argument(
        "--min-distance", type=float, default=0.0, help="stop once the pool is this well covered"
    )
    chosen.add_argument(
        "--strategy",
        action="append",
        choices=["diversity", "uncertainty", "similarity", "balance"],
        help="strategies to compose (repeatable; default: diversity)",
    )
    chosen.add_argument("--model", help="uncertainty: the model whose predictions weigh")
    chosen.add_argument(
        "--measure", choices=["least_confidence", "margin", "entropy"], default="least_confidence"
    )
    chosen.add_argument("--similar-to", action="append", default=[], help="similarity: item id")
    chosen.add_argument("--source", action="append", default=[], help="only this source")
    chosen.add_argument("--split", action="append", default=[], help="only this split")
    chosen.add_argument("--json", action="store_true", help="print the run as one JSON object")


def _select_config(args: argparse.Namespace) -> dict[str, Any]:
    strategies = set(args.strategy or ["diversity"])
    if "uncertainty" in strategies and not args.model:
        raise ConfigError("--strategy uncertainty needs --model, the model whose doubt weighs")
    if "similarity" in strategies and not args.similar_to:
        raise ConfigError("--strategy similarity needs --similar-to ITEM_ID (repeatable)")
    config: dict[str, Any] = {
        "min_distance": args.min_distance,
        "diversity": 1.0 if "diversity" in strategies else 0.0,
        "sources": args.source,
        "splits": args.split,
    }
    if args.n_samples is not None:
        config["n_samples"] = args.n_samples
    else:
        config["proportion_samples"] = args.proportion
    if "uncertainty" in strategies:
        config |= {
            "uncertainty_model": args.model,
            "uncertainty_measure": args.measure,
            "uncertainty_weight": 1.0,
        }
    if "similarity" in strategies:
        config |= {"similar_to": args.similar_to, "similarity_weight": 1.0}
    if "balance" in strategies:
        config["balance"] = {"uniform": 1.0}
    return config


def _select(args: argparse.Namespace) -> int:
    import json

    from ingest_assets.cli.instance import open_instance
    from ingest_assets.cli.select import run_selection, summary
    from resources.config import load_config
    from resources.lake.tables import Lake
    from resources.stores.open import open_lake_store

    config = load_config()
    lake = Lake(open_lake_store(config))
    found = run_selection(lake, open_instance(config), _select_config(args))
    print(json.dumps(found) if args.json else summary(found))
    return 0


def _sync(args: argparse.Namespace) -> int:
    from ingest_assets.cli.sync import summary, sync
    from resources.config import load_config

    config = load_config()
    sources = [config.source(n) for n in args.source] if args.source else list(config.sources)
    report = sync(
        config,
        sources,
        jobs=args.jobs,
        say=lambda line: print(line, flush=True),
        retry_failed=args.retry_failed,
    )
    print(summary(report, config))
    return 1 if report.failed or report.gave_up else 0


def _add_model(args: argparse.Namespace) -> int:
    from ingest_assets.cli.instance import open_instance
    from ingest_assets.cli.models import register_versions
    from ingest_assets.models.registry import ModelVersion
    from resources.config import load_config
    from resources.lake.tables import Lake
    from resources.stores.open import open_lake_store

    config = load_config()
    labels = tuple(label.strip() for label in (args.labels or "").split(",") if label.strip())
    version = ModelVersion(args.name, args.version, args.task, args.weights, labels)
    said: list[str] = []
    register_versions(
        Lake(open_lake_store(config)),
        open_instance(config),
        [version],
        by="bucketlake add-model",
        say=said.append,
    )
    print(
        said[0] if said else f"model {version.model} version {version.version}: registered already"
    )
    return 0


def _import(args: argparse.Namespace) -> int:
    from ingest_assets.cli.imports import spec_of, start_import
    from ingest_assets.cli.instance import open_instance
    from resources.config import load_config
    from resources.lake.tables import Lake
    from resources.stores.open import open_lake_store

    config = load_config()
    lake = Lake(open_lake_store(config))
    link = True if args.images is not None and args.link is None else args.link
    spec = spec_of(
        config,
        lake,
        args.path,
        args.format,
        args.model,
        args.version,
        args.boxes,
        source=args.source,
        link=link,
        images=args.images,
    )
    outcome = start_import(config, lake, open_instance(config), spec)
    m = outcome.metadata
    linked = f"{m.get('images_linked', 0)} images linked as new items, " if spec.link else ""
    print(
        f"{spec.uri}: {m.get('records', 0)} records, {m.get('imported', 0)} imported, "
        f"{linked}{m.get('unmatched', 0)} matching no item, {m.get('rejected', 0)} rejected, "
        f"{m.get('outside_image', 0)} boxes reaching outside their image "
        f"(import {spec.key}, run {outcome.run_id[:8]})"
    )
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    import json

    from ingest_assets.cli.evaluate import run_evaluation, summary
    from ingest_assets.cli.instance import open_instance
    from resources.config import load_config
    from resources.lake.tables import Lake
    from resources.stores.open import open_lake_store

    config = load_config()
    lake = Lake(open_lake_store(config))
    report = run_evaluation(lake, open_instance(config), args.model, args.version)
    if args.json:
        print(json.dumps(report))
    else:
        print(summary(report))
    return 0


def _export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ingest_assets.cli.export import run_export, summary
    from resources.config import load_config
    from resources.lake.tables import Lake
    from resources.stores.open import open_lake_store

    config = load_config()
    out = Path(args.out)
    export = run_export(
        Lake(open_lake_store(config)),
        args.format,
        out,
        splits=args.split or (),
        sources=args.source or (),
    )
    print(summary(export, out))
    return 0


def _home(args: argparse.Namespace) -> int:
    from ingest_assets.cli.instance import ensure_dagster_home
    from resources.config import load_config

    print(ensure_dagster_home(load_config()))
    return 0


def _verify_source(args: argparse.Namespace) -> int:
    from ingest_assets.claiming.globs import KeyFilter
    from resources.config import load_config
    from resources.errors import StoreError
    from resources.stores.open import open_source_store
    from resources.stores.verify import verify_store

    config = load_config()
    source = config.source(args.name)
    try:
        with open_source_store(source) as store:
            check = verify_store(store, keep=KeyFilter(source.include, source.exclude))
    except StoreError as exc:
        print(f"source {source.name} ({source.location}): FAILED", flush=True)
        raise BucketlakeError(str(exc)) from exc
    print(f"source {source.name} ({check.store}): OK")
    for line in check.lines():
        print(f"  {line}")
    return 0


def _stop_on_sigterm() -> None:
    """SIGTERM stops bucketlake as Ctrl-C does, so that the runs it started stop too."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _stop_on_sigterm()
    handlers = {
        "sync": _sync,
        "add-model": _add_model,
        "import": _import,
        "export": _export,
        "evaluate": _evaluate,
        "select": _select,
        "home": _home,
        "verify-source": _verify_source,
    }
    try:
        return handlers[args.command](args)
    except BucketlakeError as exc:
        if args.verbose:
            traceback.print_exc()
        print(f"bucketlake: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bucketlake: interrupted", file=sys.stderr)
        return 130


def entry() -> None:
    """The ``bucketlake`` command: :func:`main`, then an exit that skips native teardown.

    Everything a command does is written and committed before :func:`main` returns. What is
    left at interpreter exit is the destruction of native thread pools (Arrow's), which can
    abort a finished process ("terminate called without an active exception", SIGABRT) and
    turn a success into a crash; so output is flushed and the process ends at once."""
    code = main()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
