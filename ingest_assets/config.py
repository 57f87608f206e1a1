"""The project configuration (``bucketlake.yaml``), validated with pydantic (DESIGN §3).

With no config file the embedded default applies: a local inbox source, a local lake and a
local Dagster instance, all under ``.bucketlake/`` in the current folder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from resources.errors import ConfigError
from resources.stores.options import StorageOptions

CONFIG_ENV = "BUCKETLAKE_CONFIG"
DEFAULT_CONFIG_FILE = "bucketlake.yaml"
EMBEDDED_DIR = ".bucketlake"
PILLOW_MAX_IMAGE_PIXELS = 89_478_485  # Pillow's own default decompression-bomb limit

LabelStrategy = Literal["folder", "split-folders", "filename", "none"]
VerifyLevel = Literal["full", "header", "none"]

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "gif", "bmp", "tif", "tiff", "webp")
DEFAULT_INCLUDE = [f"**/*.{ext}" for ext in IMAGE_EXTENSIONS]
DEFAULT_EXCLUDE = ["**/.*", "**/.*/**"]


class LakeConfig(StorageOptions):
    """The lake as a mapping: its URI plus how to reach it."""

    uri: str


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
    label_strategy: LabelStrategy = "folder"
    test_fraction: float = Field(0.2, ge=0.0, le=1.0)
    batch_size: int = Field(1000, ge=1)
    min_batch_size: int = Field(1, ge=1)
    max_batch_wait_seconds: float = Field(300.0, ge=0)
    settle_seconds: float = Field(0.0, ge=0)
    include: list[str] = Field(default_factory=lambda: list(DEFAULT_INCLUDE))
    exclude: list[str] = Field(default_factory=lambda: list(DEFAULT_EXCLUDE))
    poll_seconds: int = Field(30, ge=1)
    process_all: bool = False
    checkpoint_rows: int = Field(5000, ge=1)
    verify: VerifyLevel = "full"
    max_image_pixels: int = Field(PILLOW_MAX_IMAGE_PIXELS, ge=1)
    num_workers: int | None = Field(None, ge=1, description="default: the cores available")
    worker_kind: Literal["processes", "threads"] = Field(
        "processes", description="processes for decoding-bound work, threads for slow fetches"
    )
    ignore_errors: bool = True
    near_duplicate_distance: int = Field(
        4, ge=0, le=15, description="perceptual-hash bits two near duplicates may differ by"
    )

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


class BucketlakeConfig(BaseModel):
    """One code location's configuration."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lake: str | LakeConfig = Field(
        description="Root of the lake: a local folder, file://, s3:// or gs:// URI, or a mapping "
        "with 'uri' and storage options (endpoint_url, region, credential variables)"
    )
    sources: list[SourceConfig] = Field(default_factory=list)
    dagster_home: str = Field(
        f"{EMBEDDED_DIR}/dagster_home",
        description="The Dagster instance every entry point uses (relative to the config file).",
    )
    #: Where relative paths in this config are resolved; the config file's folder.
    base_dir: Path = Field(default_factory=Path.cwd, exclude=True)
    #: The file this came from, or None for the embedded default.
    path: Path | None = Field(None, exclude=True)

    @field_validator("sources")
    @classmethod
    def _unique_names(cls, sources: list[SourceConfig]) -> list[SourceConfig]:
        seen: set[str] = set()
        for source in sources:
            if source.name in seen:
                raise ValueError(f"source name {source.name!r} is used twice; names must be unique")
            seen.add(source.name)
        return sources

    def source(self, name: str) -> SourceConfig:
        for source in self.sources:
            if source.name == name:
                return source
        names = ", ".join(s.name for s in self.sources) or "(none)"
        raise ConfigError(f"no source named {name!r}; the configured sources are: {names}")

    def resolve(self, path_or_uri: str) -> str:
        """A local path made absolute against the config's folder; URIs are returned as is."""
        if "://" in path_or_uri:
            return path_or_uri
        path = Path(path_or_uri)
        return str(path if path.is_absolute() else self.base_dir / path)

    @property
    def lake_uri(self) -> str:
        return self.resolve(self.lake if isinstance(self.lake, str) else self.lake.uri)

    @property
    def lake_options(self) -> StorageOptions:
        return StorageOptions() if isinstance(self.lake, str) else self.lake.storage()

    @property
    def dagster_home_path(self) -> Path:
        return Path(self.resolve(self.dagster_home))

    @property
    def is_embedded(self) -> bool:
        return self.path is None


def embedded_config(base_dir: Path | None = None) -> BucketlakeConfig:
    """The default with no config file: everything local under ``.bucketlake/``."""
    base = base_dir or Path.cwd()
    return BucketlakeConfig(
        lake=f"{EMBEDDED_DIR}/lake",
        sources=[
            SourceConfig(
                name="inbox",
                uri=f"{EMBEDDED_DIR}/inbox",
                label_strategy="folder",
                batch_size=500,
                max_batch_wait_seconds=60,
            )
        ],
        base_dir=base,
    )


def _field_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part not in ("function-after",) and not str(part).startswith("function-"):
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def format_validation_error(origin: str, exc: ValidationError) -> str:
    lines = [f"{origin} is not a valid Bucketlake config:"]
    for err in exc.errors():
        where = _field_path(tuple(err["loc"]))
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown key; remove it or check its spelling"
        elif err["type"] == "string_pattern_mismatch":
            message += (
                " (letters, digits and underscores only: the name becomes part of Dagster names)"
            )
        got = "" if err["type"] == "missing" else f" (got {err.get('input')!r})"
        lines.append(f"  {where}: {message}{got}")
    return "\n".join(lines)


def parse_config(data: Any, *, origin: str, base_dir: Path, path: Path | None) -> BucketlakeConfig:
    if not isinstance(data, dict):
        raise ConfigError(
            f"{origin}: expected a mapping with 'lake' and 'sources' at the top level"
        )
    try:
        return BucketlakeConfig.model_validate({**data, "base_dir": base_dir, "path": path})
    except ValidationError as exc:
        raise ConfigError(format_validation_error(origin, exc)) from None


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
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse_config(data, origin=str(path), base_dir=path.parent, path=path)
