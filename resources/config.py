"""The project configuration (``bucketlake.yaml``), validated with pydantic (DESIGN §3).

With no config file the embedded default applies: a local inbox source, a local lake and a
local Dagster instance, all under ``.bucketlake/`` in the current folder.

This module holds the models and the loading; how an invalid config is reported is in
:mod:`resources.config_errors`, the bounded YAML loader in :mod:`resources.config_yaml`, and the
check that the lake and ``dagster_home`` stay outside the sources in :mod:`resources.config_layout`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from dagster import Config
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from resources.config_errors import format_validation_error
from resources.config_inference import EmbeddingsConfig, InferenceConfig, predictions_asset
from resources.config_layout import refuse_overlapping_sources
from resources.config_yaml import AliasesTooLarge, BoundedLoader
from resources.errors import ConfigError
from resources.lake.datapool import LINKED_SOURCE
from resources.stores.options import StorageOptions, no_options, refuse_credentials_in_uri

CONFIG_ENV = "BUCKETLAKE_CONFIG"
DEFAULT_CONFIG_FILE = "bucketlake.yaml"
EMBEDDED_DIR = ".bucketlake"
PILLOW_MAX_IMAGE_PIXELS = 89_478_485  # Pillow's own default decompression-bomb limit
DEFAULT_MAX_OBJECT_BYTES = 512 * 1024 * 1024
DEFAULT_FETCH_DEADLINE_SECONDS = 300.0

LabelStrategy = Literal["folder", "split-folders", "filename", "none"]
VerifyLevel = Literal["full", "header", "none"]

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "gif", "bmp", "tif", "tiff", "webp")
DEFAULT_INCLUDE = [f"**/*.{ext}" for ext in IMAGE_EXTENSIONS]
DEFAULT_EXCLUDE = ["**/.*", "**/.*/**"]


ExecutorKind = Literal["in_process", "multiprocess"]


class LakeConfig(StorageOptions):
    """The lake as a mapping: its URI plus how to reach it."""

    uri: str = Field(description="a local folder, file://, s3:// or gs:// URI")

    _no_credentials_in_uri = field_validator("uri")(refuse_credentials_in_uri)


class ExecutorConfig(BaseModel):
    """How the steps of one run execute."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: ExecutorKind = Field(
        "in_process",
        description="in_process: every step in the run's process (a batch parallelises inside "
        "dataset_items); multiprocess: a process per step",
    )
    max_concurrent: int | None = Field(
        None, ge=1, description="multiprocess: most steps at once (default: the cores)"
    )


LabelFormat = Literal["coco", "coco-results", "yolo", "voc", "csv", "labelstudio"]
BoxRule = Literal["keep", "clip", "reject"]


class AnnotationFiles(Config):
    """Label files of a source: the keys a glob takes, in one format. (A Dagster ``Config``,
    as every field of a source is: the resources carry the sources.)"""

    model_config = ConfigDict(extra="forbid", frozen=True)

    glob: str = Field(description="the keys of the label files (e.g. labels/*.json)")
    format: LabelFormat = Field(description="their format")
    boxes: BoxRule = Field(
        "keep", description="boxes reaching outside their image: keep as given, clip or reject"
    )


class PredictionFiles(AnnotationFiles):
    """Prediction files of a source, of one registered model version."""

    model: str = Field(description="the registered model the predictions come from")
    version: str = Field(description="that model's version")


class SourceConfig(StorageOptions):
    """One place media arrives, and how its objects become items."""

    name: str = Field(pattern=r"^[A-Za-z0-9_]+$", description="Part of Dagster names.")
    uri: str | None = Field(
        None, description="a folder path, file:///folder, s3://bucket/prefix, gs://bucket/prefix"
    )
    manifest: str | None = Field(
        None,
        description="a JSONL or CSV file of image_location, reference_id, metadata "
        "(https://, s3://, gs:// or file://)",
    )
    label_strategy: LabelStrategy = Field(
        "folder",
        description="where an item's class comes from: its folder, train/test folders with "
        "class folders inside, the file name before the first '_', or none",
    )
    test_fraction: float = Field(
        0.2, ge=0.0, le=1.0, description="share of items put in the test split (by item_id)"
    )
    batch_size: int = Field(1000, ge=1, description="most object versions one batch holds")
    min_batch_size: int = Field(
        1, ge=1, description="a smaller remainder waits for more objects (or the wait below)"
    )
    max_batch_wait_seconds: float = Field(
        300.0, ge=0, description="how long a small remainder may wait before it becomes a batch"
    )
    settle_seconds: float = Field(
        0.0, ge=0, description="objects younger than this are left for the next claim"
    )
    include: list[str] = Field(
        default_factory=lambda: list(DEFAULT_INCLUDE), description="globs of keys to take"
    )
    exclude: list[str] = Field(
        default_factory=lambda: list(DEFAULT_EXCLUDE), description="globs of keys to leave out"
    )
    poll_seconds: int = Field(30, ge=1, description="the datapool sensor's interval")
    process_all: bool = Field(
        False, description="offer every object once more, as new versions of the same items"
    )
    checkpoint_rows: int = Field(5000, ge=1, description="rows per checkpoint chunk")
    verify: VerifyLevel = Field(
        "full", description="full decode, header only, or no check of the image bytes"
    )
    max_image_pixels: int = Field(
        PILLOW_MAX_IMAGE_PIXELS, ge=1, description="larger images are corrupt (decompression bombs)"
    )
    num_workers: int | None = Field(
        None, ge=1, description="workers building items; default: the cores available"
    )
    worker_kind: Literal["processes", "threads"] = Field(
        "processes", description="processes for decoding-bound work, threads for slow fetches"
    )
    ignore_errors: bool = Field(
        True, description="bad objects become items with a status; false fails the batch"
    )
    follow_symlinks: bool = Field(
        False,
        description="local folders: take symbolic links that stay inside the source's folder "
        "(links leading out of it are never followed)",
    )
    max_object_bytes: int = Field(
        DEFAULT_MAX_OBJECT_BYTES,
        ge=1,
        description="larger objects are reported as too large, never read into memory",
    )
    fetch_deadline_seconds: float = Field(
        DEFAULT_FETCH_DEADLINE_SECONDS,
        gt=0,
        description="the most one object's fetch may take in all, however slowly bytes arrive",
    )
    manifest_file_roots: list[str] | None = Field(
        None,
        description="folders that file:// locations in a manifest may lie under (default: the "
        "manifest's own folder for a local manifest, none for a remote one)",
    )
    annotations: list[AnnotationFiles] = Field(
        default_factory=list,
        description="label files in the source, imported once the items they name are ingested",
    )
    predictions: list[PredictionFiles] = Field(
        default_factory=list, description="prediction files in the source, per model version"
    )
    near_duplicate_distance: int = Field(
        4, ge=0, le=15, description="perceptual-hash bits two near duplicates may differ by"
    )

    _no_credentials_in_uri = field_validator("uri", "manifest")(refuse_credentials_in_uri)

    @model_validator(mode="before")
    @classmethod
    def _manifest_keys_have_no_extension(cls, data: Any) -> Any:
        # Manifest keys are reference ids ("cam1-0001"), not file names: take every entry
        # unless the config says otherwise.
        if isinstance(data, dict) and data.get("manifest") and "include" not in data:
            return {**data, "include": ["**"]}
        return data

    @model_validator(mode="after")
    def _one_location(self) -> SourceConfig:
        if (self.uri is None) == (self.manifest is None):
            raise ValueError(
                f"source {self.name!r} needs exactly one of 'uri' (a bucket prefix or folder) "
                "or 'manifest' (a file listing image locations)"
            )
        return self

    @property
    def label_globs(self) -> list[str]:
        """The globs of the source's label and prediction files (never claimed as items)."""
        return [f.glob for f in [*self.annotations, *self.predictions]]

    @property
    def location(self) -> str:
        """The URI that names the source in messages."""
        return self.uri or f"manifest {self.manifest}"

    @model_validator(mode="after")
    def _batch_sizes(self) -> SourceConfig:
        if self.min_batch_size > self.batch_size:
            raise ValueError(
                f"min_batch_size ({self.min_batch_size}) must not exceed "
                f"batch_size ({self.batch_size})"
            )
        return self


def find_source(sources: list[SourceConfig], name: str) -> SourceConfig:
    """The source named ``name``; ConfigError listing the configured names if there is none."""
    for source in sources:
        if source.name == name:
            return source
    names = ", ".join(s.name for s in sources) or "(none)"
    raise ConfigError(f"no source named {name!r}; the configured sources are: {names}")


class ModelConfig(BaseModel):
    """A model version to register (``bucketlake add-model`` registers one from the shell)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="the model's name (letters, digits, '_' and '-')")
    version: str = Field(description="the version (letters, digits, '_', '-' and '.')")
    task: Literal["embedding", "classification", "detection"] = Field(
        "detection", description="what the model gives: embeddings, classes or boxes"
    )
    weights: str | None = Field(None, description="where its weights are (a path or URI)")
    labels: list[str] = Field(default_factory=list, description="its class names, in order")
    pretag: bool = Field(
        False,
        description="run it on every batch (a predictions_<name> asset); needs weights and task "
        "classification or detection",
    )
    confidence_threshold: float = Field(
        0.5, ge=0.0, le=1.0, description="pre-tagging keeps predictions at least this confident"
    )
    top_k: int = Field(1, ge=1, description="classification: labels kept per item")

    @model_validator(mode="after")
    def _pretag_needs_a_runnable_model(self) -> ModelConfig:
        if self.pretag and (self.weights is None or self.task == "embedding"):
            raise ValueError(
                f"model {self.name}: pretag needs weights and task classification or detection"
            )
        return self


class BucketlakeConfig(BaseModel):
    """One code location's configuration."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lake: str | LakeConfig = Field(
        description="Root of the lake: a local folder, file://, s3:// or gs:// URI, or a mapping "
        "with 'uri' and storage options (endpoint_url, region, credential variables)"
    )
    sources: list[SourceConfig] = Field(default_factory=list)
    models: list[ModelConfig] = Field(
        default_factory=list, description="model versions registered at every sync"
    )
    inference: InferenceConfig = Field(default_factory=InferenceConfig)
    embeddings: EmbeddingsConfig = Field(default_factory=EmbeddingsConfig)
    dagster_home: str = Field(
        f"{EMBEDDED_DIR}/dagster_home",
        description="The Dagster instance every entry point uses (relative to the config file) "
        "when DAGSTER_HOME is not set.",
    )
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)
    #: Where relative paths in this config are resolved; the config file's folder.
    base_dir: Path = Field(default_factory=Path.cwd, exclude=True)
    #: The file this came from, or None for the embedded default.
    path: Path | None = Field(None, exclude=True)

    @field_validator("sources")
    @classmethod
    def _unique_names(cls, sources: list[SourceConfig]) -> list[SourceConfig]:
        seen: set[str] = set()
        for source in sources:
            if source.name == LINKED_SOURCE:
                raise ValueError(
                    f"source name {LINKED_SOURCE!r} is reserved for the items that COCO imports "
                    "link (bucketlake import FILE --format coco); name the source otherwise"
                )
            if source.name in seen:
                raise ValueError(f"source name {source.name!r} is used twice; names must be unique")
            seen.add(source.name)
        return sources

    @field_validator("lake")
    @classmethod
    def _no_credentials_in_lake(cls, lake: str | LakeConfig) -> str | LakeConfig:
        if isinstance(lake, str):
            refuse_credentials_in_uri(lake)
        return lake

    @model_validator(mode="after")
    def _one_pretagging_asset_per_model(self) -> BucketlakeConfig:
        seen: dict[str, ModelConfig] = {}
        for model in self.models:
            if not model.pretag:
                continue
            name = predictions_asset(model.name)
            if name in seen:
                first = seen[name]
                raise ValueError(
                    f"models {first.name} {first.version} and {model.name} {model.version} "
                    f"would both pre-tag as asset {name}: one version of a model pre-tags"
                )
            seen[name] = model
        return self

    @model_validator(mode="after")
    def _lake_and_instance_outside_sources(self) -> BucketlakeConfig:
        refuse_overlapping_sources(self)
        return self

    def source(self, name: str) -> SourceConfig:
        return find_source(self.sources, name)

    def resolve(self, path_or_uri: str) -> str:
        """A local path made absolute against the config's folder; URIs are returned as is."""
        if "://" in path_or_uri:
            return path_or_uri
        path = Path(path_or_uri)
        return str(path if path.is_absolute() else self.base_dir / path)

    def resolved(self) -> BucketlakeConfig:
        """This config with every local path of the lake and the sources made absolute, so that
        what is built from it means the same from any working directory."""
        lake = self.lake
        lake = (
            self.resolve(lake)
            if isinstance(lake, str)
            else lake.model_copy(update={"uri": self.resolve(lake.uri)})
        )
        sources = [
            source.model_copy(update=self._resolved_paths(source)) for source in self.sources
        ]
        models = [
            model.model_copy(update={"weights": self.resolve(model.weights)})
            if model.weights is not None
            and "://" not in model.weights
            and not model.weights.startswith("builtin:")
            else model
            for model in self.models
        ]
        return self.model_copy(update={"lake": lake, "sources": sources, "models": models})

    def _resolved_paths(self, source: SourceConfig) -> dict[str, Any]:
        paths: dict[str, Any] = {
            field: self.resolve(value)
            for field in ("uri", "manifest")
            if (value := getattr(source, field)) is not None
        }
        if source.manifest_file_roots is not None:
            paths["manifest_file_roots"] = [self.resolve(r) for r in source.manifest_file_roots]
        return paths

    @property
    def lake_uri(self) -> str:
        return self.resolve(self.lake if isinstance(self.lake, str) else self.lake.uri)

    @property
    def lake_options(self) -> StorageOptions:
        return no_options() if isinstance(self.lake, str) else self.lake.storage()

    @property
    def dagster_home_path(self) -> Path:
        """The config's instance folder (``DAGSTER_HOME``, where set, wins: see the CLI)."""
        return Path(self.resolve(self.dagster_home))

    @property
    def names_dagster_home(self) -> bool:
        """Whether the config file sets ``dagster_home`` itself (not the default)."""
        return "dagster_home" in self.model_fields_set

    @property
    def is_embedded(self) -> bool:
        return self.path is None


def embedded_config(base_dir: Path | None = None) -> BucketlakeConfig:
    """The default with no config file: everything local under ``.bucketlake/``."""
    base = base_dir or Path.cwd()
    return BucketlakeConfig(
        lake=f"{EMBEDDED_DIR}/lake",
        sources=[
            SourceConfig.model_validate(
                {
                    "name": "inbox",
                    "uri": f"{EMBEDDED_DIR}/inbox",
                    "label_strategy": "folder",
                    "batch_size": 500,
                    "max_batch_wait_seconds": 60,
                }
            )
        ],
        base_dir=base,
    ).resolved()


def parse_config(data: Any, *, origin: str, base_dir: Path, path: Path | None) -> BucketlakeConfig:
    if not isinstance(data, dict):
        raise ConfigError(
            f"{origin}: expected a mapping with 'lake' and 'sources' at the top level"
        )
    try:
        config = BucketlakeConfig.model_validate({**data, "base_dir": base_dir, "path": path})
    except ValidationError as exc:
        raise ConfigError(format_validation_error(origin, exc)) from None
    return config.resolved()


def config_file(cwd: Path | None = None) -> Path | None:
    """The config file in force: ``$BUCKETLAKE_CONFIG``, else ``bucketlake.yaml`` if present."""
    named = os.environ.get(CONFIG_ENV) or None
    if named:
        path = Path(named)
        if not path.is_file():
            raise ConfigError(
                f"{CONFIG_ENV}={named} names no file; point it at a bucketlake.yaml or unset it "
                "to use the embedded default"
            )
        return path.absolute()
    default = (cwd or Path.cwd()) / DEFAULT_CONFIG_FILE
    return default if default.is_file() else None


def load_config(path: Path | None = None) -> BucketlakeConfig:
    """Load and validate the config in force (see :func:`config_file`)."""
    path = path or config_file()
    if path is None:
        return embedded_config()
    path = path.absolute()
    try:  # BoundedLoader is a SafeLoader: no Python objects beyond plain values
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=BoundedLoader)
    except AliasesTooLarge as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except RecursionError:  # PyYAML composes nested values recursively, as does the check
        raise ConfigError(
            f"{path}: values nest too deeply (a config needs a few levels): flatten them"
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse_config(data, origin=str(path), base_dir=path.parent, path=path)
