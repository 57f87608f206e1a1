"""Models the platform trains on the dataset, each registered as a model version:
``pool_embedding_model`` (a self-supervised encoder trained on the pool itself, as the Lightly
worker trains its embedding model) and ``trained_model`` (a classifier head retrained on the
labelled items of split train, scored on test, as Edge Impulse's "retrain model")."""

import functools
import hashlib
import json
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pyarrow.compute as pc
from dagster import (
    AssetExecutionContext,
    Config,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)
from pydantic import Field

from ingest_assets.assets.charts import line_chart, matrix_chart
from ingest_assets.assets.dataset_items import dataset_items
from ingest_assets.assets.inference_steps import ok_items
from ingest_assets.assets.metadata import Timer
from ingest_assets.embeddings.knn import knn_accuracy
from ingest_assets.models.registry import ModelVersion, register
from ingest_assets.models.runnable import LAKE_WEIGHTS, builtin_spec
from ingest_assets.names import EMBEDDINGS
from ingest_assets.partitions import MODEL_VERSIONS
from resources.config import SourceConfig
from resources.errors import PreconditionFailed
from resources.inference.decode import ItemRef
from resources.inference.runtime import InferenceRuntime
from resources.inference.specs import InputSpec
from resources.lake.resource import LakeResource
from resources.stores.base import ObjectStore, ReadLimits
from resources.stores.open import open_source_store
from resources.stores.resource import SourcesResource

POOL_MODEL = "pool"
POOL_EMBEDDING_MODEL = "pool_embedding_model"
TRAINED_MODEL = "trained_model"
TRAINING_GROUP = "training"


class PoolTrainingConfig(Config):
    """How the pool embedding model is trained (SimCLR-style)."""

    epochs: int = Field(60, ge=1, description="passes over the pool")
    batch_size: int = Field(256, ge=8, description="images per step (the loss's negatives)")
    width: int = Field(32, ge=4, description="channels of the first stage (features: 8x this)")
    image_size: int = Field(32, ge=8, description="images are resized to this square")
    flip: float = Field(0.5, ge=0, le=1, description="horizontal flips (0 for text or digits)")
    learning_rate: float = Field(2e-3, gt=0)
    temperature: float = Field(0.2, gt=0, description="of the NT-Xent loss")
    seed: int = Field(0, description="the same seed, items and settings give the same model")
    max_items: int = Field(50_000, ge=16, description="a seeded sample of the pool past this")


class RetrainConfig(Config):
    """How ``trained_model`` retrains the classifier head."""

    model: str = Field("retrained", description="the name it is registered under")
    epochs: int = Field(200, ge=1)
    learning_rate: float = Field(0.01, gt=0)
    seed: int = Field(0)


def _by_source(
    items: list[dict[str, Any]], sources: SourcesResource
) -> Iterator[tuple[list[int], list[ItemRef], Callable[[], ObjectStore], ReadLimits]]:
    """The items source by source: their indices, references, the store opener and limits."""
    by_source: dict[str, list[int]] = {}
    for index, row in enumerate(items):
        by_source.setdefault(row["source"], []).append(index)
    for name, indices in by_source.items():
        source: SourceConfig = sources.source(name)
        refs = [
            ItemRef(items[i]["item_id"], items[i]["key"], items[i]["change_token"]) for i in indices
        ]
        limits = ReadLimits(source.max_object_bytes, source.fetch_deadline_seconds)
        yield indices, refs, functools.partial(open_source_store, source), limits


def _decoded(
    context: AssetExecutionContext,
    items: list[dict[str, Any]],
    sources: SourcesResource,
    inference: InferenceRuntime,
    spec: InputSpec,
) -> tuple[np.ndarray[Any, Any], list[int]]:
    """The items decoded as ``spec`` says (uint8, N x H x W x 3) and the indices of those that
    were; read source by source through the runtime's loader."""
    height, width = spec.size
    out = np.zeros((len(items), height, width, 3), np.uint8)
    decoded: list[int] = []
    for indices, refs, opener, limits in _by_source(items, sources):
        for got, arrays, errors in inference.images(refs, opener, spec, limits):
            for at, array in zip(got, arrays, strict=True):
                out[indices[at]] = array
                decoded.append(indices[at])
            for _, error in errors:
                context.log.warning(f"left out of training: {error}")
    decoded.sort()
    return out[decoded], decoded


def _version(prefix: str, item_ids: list[str], settings: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps([item_ids, settings], sort_keys=True).encode())
    return f"{prefix}-{digest.hexdigest()[:10]}"


def _register(
    context: AssetExecutionContext,
    lake: LakeResource,
    version: ModelVersion,
    weights: bytes,
    key: str,
) -> None:
    try:  # a version's weights never change: the same items and settings name the same one
        lake.object_store.put(key, weights, create_only=True)
    except PreconditionFailed:
        context.log.info(f"{key} exists: version {version.version} is kept as it was trained")
    register(
        lake.lake(), version, by=f"{context.asset_key.to_user_string()} run {context.run.run_id}"
    )
    context.instance.add_dynamic_partitions(MODEL_VERSIONS, [version.key])


@asset(
    name=POOL_EMBEDDING_MODEL,
    deps=[dataset_items],
    group_name=TRAINING_GROUP,
    kinds={"pytorch"},
    description="An embedding model trained on the pool itself (self-supervised, SimCLR-style "
    "augmentations), registered as model 'pool'; embeddings use it when the config says "
    "embeddings: {model: pool, version: <its version>}.",
)
def pool_embedding_model(
    context: AssetExecutionContext,
    config: PoolTrainingConfig,
    lake: LakeResource,
    sources: SourcesResource,
    inference: InferenceRuntime,
) -> MaterializeResult[None]:
    from ingest_assets.training.augment import Augmentations
    from ingest_assets.training.simclr import (
        SimCLRSettings,
        embed_pool,
        pool_encoder_weights,
        train_simclr,
    )

    timer = Timer()
    items = ok_items(lake.lake()).to_pylist()
    if len(items) > config.max_items:
        keep = np.random.default_rng(config.seed).choice(
            len(items), config.max_items, replace=False
        )
        items = [items[i] for i in sorted(keep)]
    spec = InputSpec(
        size=(config.image_size, config.image_size),
        mean=(0.0, 0.0, 0.0),
        std=(1.0, 1.0, 1.0),
        resize="stretch",
    )
    context.log.info(f"decoding {len(items)} items at {config.image_size}x{config.image_size}")
    images, decoded = _decoded(context, items, sources, inference, spec)
    items = [items[i] for i in decoded]
    if len(items) < 16:
        raise Failure(f"the pool has {len(items)} decodable items; training needs at least 16")
    settings = SimCLRSettings(
        epochs=config.epochs,
        batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        temperature=config.temperature,
        width=config.width,
        seed=config.seed,
        augment=Augmentations(flip=config.flip),
    )
    inference.torch_device()  # sets torch's threads
    trained = train_simclr(images, settings, context.log.info)
    vectors = embed_pool(trained.encoder, images)
    labelled = [i for i, row in enumerate(items) if row["label"] is not None]
    labels = [items[i]["label"] for i in labelled]
    pool_knn = knn_accuracy(vectors[labelled], labels) if labelled else None
    raw_knn = (
        knn_accuracy(images[labelled].reshape(len(labelled), -1).astype(np.float32), labels)
        if labelled
        else None
    )
    ids = [row["item_id"] for row in items]
    version = _version(POOL_MODEL, ids, config.model_dump())
    key = f"{POOL_EMBEDDING_MODEL}/{version}/weights.pt"
    weights = pool_encoder_weights(trained.encoder, spec, 3, config.width)
    registered = ModelVersion(POOL_MODEL, version, "embedding", weights=LAKE_WEIGHTS + key)
    _register(context, lake, registered, weights, key)
    context.log.info(
        f"registered model {POOL_MODEL} version {version}; embed with it by setting "
        f"embeddings: {{model: {POOL_MODEL}, version: {version}}} in the config"
    )
    return MaterializeResult(
        metadata={
            "model": POOL_MODEL,
            "model_version": version,
            "items": len(items),
            "dimensions": int(vectors.shape[1]),
            "final_loss": round(trained.losses[-1], 4),
            "loss": MetadataValue.md(line_chart(trained.losses, title="NT-Xent loss")),
            "knn5_accuracy": None if pool_knn is None else round(pool_knn, 4),
            "knn5_accuracy_raw_pixels": None if raw_knn is None else round(raw_knn, 4),
            "knn_labelled_items": len(labelled),
            "use_it": MetadataValue.md(
                f"`embeddings: {{model: {POOL_MODEL}, version: {version}}}` in bucketlake.yaml"
            ),
            **timer.metadata(len(items) * config.epochs, "images"),
        }
    )


@asset(
    name=TRAINED_MODEL,
    deps=[dataset_items],
    group_name=TRAINING_GROUP,
    kinds={"pytorch"},
    description="The default model with its classifier head retrained on the labelled items "
    "of split train and scored on split test, registered as a new model version.",
)
def trained_model(
    context: AssetExecutionContext,
    config: RetrainConfig,
    lake: LakeResource,
    sources: SourcesResource,
    inference: InferenceRuntime,
) -> MaterializeResult[None]:
    from ingest_assets.training.classifier import HeadSettings, classifier_weights, train_head

    timer = Timer()
    items = [r for r in ok_items(lake.lake()).to_pylist() if r["label"] is not None]
    if len({r["label"] for r in items if r["split"] == "train"}) < 2:
        raise Failure(
            "retraining needs labelled items of at least two classes in split train; label "
            "items (a folder label strategy, or imported labels) first",
            allow_retries=False,
        )
    features, items = _features(context, lake, sources, inference, items)
    labels = [r["label"] for r in items]
    train = np.asarray([r["split"] == "train" for r in items])
    settings = HeadSettings(config.epochs, config.learning_rate, seed=config.seed)
    retrained = train_head(features, labels, train, settings, context.log.info)
    version = _version("ft", [r["item_id"] for r in items], config.model_dump())
    key = f"{TRAINED_MODEL}/{version}/weights.pth"
    registered = ModelVersion(
        config.model,
        version,
        "classification",
        weights=LAKE_WEIGHTS + key,
        labels=tuple(retrained.labels),
    )
    _register(context, lake, registered, classifier_weights(retrained), key)
    context.log.info(f"registered model {config.model} version {version}")
    test_count = int((~train).sum())
    return MaterializeResult(
        metadata={
            "model": config.model,
            "model_version": version,
            "classes": len(retrained.labels),
            "train_items": int(train.sum()),
            "test_items": test_count,
            "train_accuracy": round(retrained.train_accuracy, 4),
            "test_accuracy": None
            if retrained.test_accuracy is None
            else round(retrained.test_accuracy, 4),
            "chance": round(1 / len(retrained.labels), 4),
            "confusion": MetadataValue.md(
                matrix_chart(retrained.labels, retrained.confusion, title="test split")
            ),
            "loss": MetadataValue.md(line_chart(retrained.losses, title="cross-entropy")),
            **timer.metadata(len(items), "items"),
        }
    )


def _features(
    context: AssetExecutionContext,
    lake: LakeResource,
    sources: SourcesResource,
    inference: InferenceRuntime,
    items: list[dict[str, Any]],
) -> tuple[np.ndarray[Any, Any], list[dict[str, Any]]]:
    """The default model's features of ``items``: read from ``embeddings`` where it holds
    them, computed for the rest; items that cannot be decoded are left out."""
    from ingest_assets.embeddings.table import vectors_of

    spec = builtin_spec("embedding")
    found: dict[str, np.ndarray[Any, Any]] = {}
    tables = lake.lake()
    if tables.committed_partitions(EMBEDDINGS):
        wanted = pc.field("item_id").isin([r["item_id"] for r in items])
        known = tables.read_current(EMBEDDINGS, filter=wanted)
        mine = pc.and_(
            pc.equal(known.column("model"), spec.model),
            pc.equal(known.column("model_version"), spec.version),
        )
        known = known.filter(mine)
        found = dict(zip(known.column("item_id").to_pylist(), vectors_of(known), strict=True))
    missing = [r for r in items if r["item_id"] not in found]
    if missing:
        context.log.info(f"computing the features of {len(missing)} items not in embeddings")
        model = inference.model(spec)
        for indices, refs, opener, limits in _by_source(missing, sources):
            for batch in inference.run(model, refs, opener, limits):
                for _, error in batch.errors:
                    context.log.warning(f"left out of retraining: {error}")
                if batch.outputs is None or batch.outputs.vectors is None:
                    continue  # nothing in this batch could be decoded
                for at, vector in zip(batch.indices, batch.outputs.vectors, strict=True):
                    found[missing[indices[at]]["item_id"]] = vector
    kept = [r for r in items if r["item_id"] in found]
    if not kept:
        raise Failure("no labelled item could be read and decoded; see the warnings above")
    return np.stack([found[r["item_id"]] for r in kept]), kept
