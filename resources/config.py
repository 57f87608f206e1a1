"""The project configuration (``bucketlake.yaml``), validated with pydantic (DESIGN §3).

With no config file the embedded default applies: a local inbox source, a local lake and a
local Dagster instance, all under ``.bucketlake/`` in the current folder.
"""

from __future__ import annotations

import os
import re
import reprlib
from itertools import islice
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from resources.errors import ConfigError
from resources.stores.open import local_path, split_bucket_uri
from resources.stores.options import (
    StorageOptions,
    env_field_for,
    is_secret_like,
    no_options,
    refuse_credentials_in_uri,
    url_authority,
)

CONFIG_ENV = "BUCKETLAKE_CONFIG"
DEFAULT_CONFIG_FILE = "bucketlake.yaml"
EMBEDDED_DIR = ".bucketlake"
PILLOW_MAX_IMAGE_PIXELS = 89_478_485  # Pillow's own default decompression-bomb limit
DEFAULT_MAX_OBJECT_BYTES = 512 * 1024 * 1024
DEFAULT_FETCH_DEADLINE_SECONDS = 300.0
#: The most values a config may hold once its aliases are expanded (real ones hold hundreds).
MAX_CONFIG_VALUES = 50_000
#: An invalid config's message lists this many problems at most, and is this long at most.
MAX_LISTED_PROBLEMS = 20
MAX_MESSAGE_CHARS = 6000

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
    def _lake_and_instance_outside_sources(self) -> BucketlakeConfig:
        lake_endpoint = None if isinstance(self.lake, str) else self.lake.endpoint_url
        lake = _place(self.lake_uri, lake_endpoint)
        home = _place(str(self.dagster_home_path), None)
        for source in self.sources:
            if source.uri is None:
                continue  # a manifest lists its objects: nothing is found by listing a folder
            uri = self.resolve(source.uri)
            place = _place(uri, source.endpoint_url)
            if (relation := _relation(lake, place)) is not None:
                raise ValueError(
                    f"the lake ({self.lake_uri}) {relation} source {source.name!r} ({uri}): "
                    "every sync would take the lake's own tables, commit markers and leases as "
                    "new objects; move the lake to a folder or prefix outside every source"
                )
            if (relation := _relation(home, place)) is not None:
                raise ValueError(
                    f"dagster_home ({self.dagster_home_path}) {relation} source {source.name!r} "
                    f"({uri}): every sync would take the Dagster instance's files as new "
                    "objects; set dagster_home to a folder outside the source"
                )
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
            source.model_copy(
                update={
                    field: self.resolve(value)
                    for field in ("uri", "manifest")
                    if (value := getattr(source, field)) is not None
                }
            )
            for source in self.sources
        ]
        return self.model_copy(update={"lake": lake, "sources": sources})

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


#: Where a location lies: the store (the local disk, or a bucket at an endpoint) and a prefix
#: in it that ends with '/'; one lies inside another when its prefix starts with the other's.
Place = tuple[tuple[str, ...], str]


def _place(uri: str, endpoint_url: str | None) -> Place | None:
    """Where a resolved lake or source URI lies; None for a scheme that cannot be compared."""
    scheme = urlparse(uri).scheme if "://" in uri else ""
    if scheme in ("", "file"):
        return ("local",), os.path.join(os.path.realpath(local_path(uri)), "")
    if scheme in ("s3", "gs") and url_authority(uri):
        bucket, prefix = split_bucket_uri(uri)
        endpoint = (endpoint_url or "").rstrip("/") if scheme == "s3" else ""
        return (scheme, endpoint, bucket), f"/{prefix}"
    return None


def _relation(place: Place | None, source: Place | None) -> str | None:
    """How ``place`` overlaps a source's place, in words; None where they are apart."""
    if place is None or source is None or place[0] != source[0]:
        return None
    if place[1] == source[1]:
        return "is the same place as"
    if place[1].startswith(source[1]):
        return "lies inside"
    return "contains" if source[1].startswith(place[1]) else None


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


class _ShortRepr(reprlib.Repr):
    """A short repr for error messages that never shows a secret: the values of secret-like
    keys are hidden, and so is the part of a URL before an '@'."""

    _url_user = re.compile(r"(://)[^@\s]*@")

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel, self.maxdict, self.maxlist, self.maxtuple = 3, 4, 6, 6
        self.maxstring, self.maxother, self.maxlong = 60, 60, 40

    def repr_str(self, x: str, level: int) -> str:
        return super().repr_str(self._url_user.sub(r"\1***@", x), level)

    def repr_dict(self, x: dict[Any, Any], level: int) -> str:
        if not x:
            return "{}"
        if level <= 0:
            return "{...}"
        pieces = [
            f"{self.repr1(key, level - 1)}: "
            + ("<hidden>" if is_secret_like(str(key)) else self.repr1(value, level - 1))
            for key, value in islice(x.items(), self.maxdict)
        ]
        if len(x) > self.maxdict:
            pieces.append("...")
        return "{" + ", ".join(pieces) + "}"


_short_repr = _ShortRepr().repr


def _named_parts(loc: tuple[Any, ...]) -> list[str | int]:
    """The keys and indexes of an error's location, without pydantic's validator tags."""
    return [part for part in loc if isinstance(part, int) or not part.startswith("function-")]


def _field_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in _named_parts(loc):
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            key = part if len(part) <= 60 else part[:57] + "..."  # an unknown key can be long
            out += f".{key}" if out else key
    return out or "(top level)"


def _problem(err: Any) -> str:
    """What one validation error says: the field, what is wrong and what to do; the value
    given too, unless it may be a secret or is a whole mapping (its own lines show it)."""
    parts = _named_parts(tuple(err["loc"]))
    field = parts[-1] if parts and isinstance(parts[-1], str) else ""
    secret = any(isinstance(part, str) and is_secret_like(part) for part in parts)
    kind, message = err["type"], err["msg"].removeprefix("Value error, ")
    if kind == "extra_forbidden":
        message = (
            "a secret never goes in the config (its value is not shown here): put it in an "
            f"environment variable and name that variable in {env_field_for(field)}"
            if secret
            else "unknown key; remove it or check its spelling"
        )
    elif kind == "string_pattern_mismatch" and field.endswith("_env"):
        message = (
            "must be the NAME of an environment variable (letters, digits and underscores, not "
            "starting with a digit), not its value: put the value in a variable and write the "
            "variable's name here (what was given is not shown)"
        )
    elif kind == "string_pattern_mismatch" and field == "name":
        message += " (letters, digits and underscores only: the name becomes part of Dagster names)"
    hide = secret or kind == "missing" or isinstance(err.get("input"), dict)
    got = "" if hide else f" (got {_short_repr(err.get('input'))})"
    return f"  {_field_path(tuple(err['loc']))}: {message}{got}"


def format_validation_error(origin: str, exc: ValidationError) -> str:
    errors = exc.errors(include_url=False, include_context=False)
    lines = [f"{origin} is not a valid Bucketlake config:"]
    lines += [_problem(err) for err in errors[:MAX_LISTED_PROBLEMS]]
    if len(errors) > MAX_LISTED_PROBLEMS:
        lines.append(f"  ... and {len(errors) - MAX_LISTED_PROBLEMS} more problems")
    message = "\n".join(lines)
    if len(message) <= MAX_MESSAGE_CHARS:
        return message
    return message[:MAX_MESSAGE_CHARS] + " ... (cut: fix the problems above first)"


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


class _AliasesTooLarge(yaml.YAMLError):
    """A document whose aliases expand too far, or into themselves."""


class _BoundedLoader(yaml.SafeLoader):
    """A SafeLoader that checks each composed document before anything is built from it.

    The composer keeps an alias as one more reference to its anchor's node, so a few hundred
    bytes of aliases of aliases ("billion laughs") stay small as nodes, yet become millions of
    values in what validates them and in the errors that repeat them."""

    def compose_document(self) -> yaml.Node | None:
        node = super().compose_document()
        if node is not None:
            _expanded_size(node, sizes={}, open_nodes=set())
        return node


def _expanded_size(node: yaml.Node, sizes: dict[int, int], open_nodes: set[int]) -> int:
    """How many values ``node`` holds with its aliases expanded (each shared node counted once
    per use, computed once); _AliasesTooLarge past MAX_CONFIG_VALUES or for an alias inside
    the value it names."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in open_nodes:
        raise _AliasesTooLarge(
            f"the value at {_position(node)} holds an alias of itself; a config cannot be "
            "recursive: write that value out"
        )
    open_nodes.add(key)
    children: list[yaml.Node] = []
    if isinstance(node, yaml.SequenceNode):
        children = node.value
    elif isinstance(node, yaml.MappingNode):
        children = [part for pair in node.value for part in pair]
    size = 1 + sum(_expanded_size(child, sizes, open_nodes) for child in children)
    open_nodes.discard(key)
    if size > MAX_CONFIG_VALUES:
        raise _AliasesTooLarge(
            f"the YAML expands to more than {MAX_CONFIG_VALUES:,} values through its aliases "
            f"(the value at {_position(node)} alone does); write the config without aliases "
            "of aliases"
        )
    sizes[key] = size
    return size


def _position(node: yaml.Node) -> str:
    return f"line {node.start_mark.line + 1}, column {node.start_mark.column + 1}"


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
    try:  # _BoundedLoader is a SafeLoader: no Python objects beyond plain values
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_BoundedLoader)
    except _AliasesTooLarge as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except RecursionError:  # PyYAML composes nested values recursively, as does the check
        raise ConfigError(
            f"{path}: values nest too deeply (a config needs a few levels): flatten them"
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse_config(data, origin=str(path), base_dir=path.parent, path=path)
