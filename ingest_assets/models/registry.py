"""The model registry (DESIGN §4): every model version that predictions, embeddings and
evaluation name, as Nucleus' ``add_model(name, reference_id)``. Stored in the lake as the
``model_registry`` table, one partition per version (``<model>_<version>``, the key of the
``model_versions`` partition set). A registered version is immutable: registering it again
with the same fields does nothing, with other fields is refused (register a new version).
Free of Dagster: the CLI, ``bucketlake sync`` and the sensors call it.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from typing import Literal

import pyarrow as pa

from resources.config import ModelConfig
from resources.errors import ConfigError
from resources.lake.tables import Lake

MODEL_REGISTRY = "model_registry"
Task = Literal["embedding", "classification", "detection"]
TASKS = ("embedding", "classification", "detection")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

REGISTRY_SCHEMA = pa.schema(
    [
        ("item_id", pa.string()),  # the version's key: one row per key, as every current view
        ("model", pa.string()),
        ("version", pa.string()),
        ("task", pa.string()),
        ("weights", pa.string()),
        ("labels", pa.list_(pa.string())),
        ("registered_by", pa.string()),
    ]
)


def version_key(model: str, version: str) -> str:
    """A model version's partition key in ``model_versions`` (and its registry row's id)."""
    return f"{model}_{version}"


@dataclass(frozen=True)
class ModelVersion:
    """One registered version of a model."""

    model: str
    version: str
    task: Task = "detection"
    weights: str | None = None  # a URI of its weights (TorchScript, state dict, ONNX)
    labels: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if not NAME.fullmatch(self.model):
            raise ConfigError(
                f"model name {self.model!r}: use letters, digits, '_' and '-' (it names "
                "partitions and assets)"
            )
        if not VERSION.fullmatch(self.version):
            raise ConfigError(
                f"model {self.model}: version {self.version!r}: use letters, digits, '_', '-' "
                "and '.'"
            )
        if self.task not in TASKS:
            raise ConfigError(
                f"model {self.model} {self.version}: task {self.task!r} is not one of "
                f"{', '.join(TASKS)}"
            )
        if "://" in (self.weights or "") and "@" in (self.weights or "").split("/")[2]:
            raise ConfigError(
                f"model {self.model} {self.version}: weights URI holds credentials; name them "
                "in the environment, never in the URI"
            )

    @property
    def key(self) -> str:
        """The version's partition key in ``model_versions``."""
        return version_key(self.model, self.version)

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()


def from_config(model: ModelConfig) -> ModelVersion:
    """The version a config's ``models`` entry registers."""
    return ModelVersion(
        model=model.name,
        version=model.version,
        task=model.task,
        weights=model.weights,
        labels=tuple(model.labels),
    )


def register(lake: Lake, version: ModelVersion, *, by: str) -> bool:
    """Register ``version``; False when it was registered already with the same fields.
    Raises ConfigError when its key is registered with other fields (a version is immutable)
    or is taken by another model's version (``a_b`` 1 and ``a`` ``b_1`` share a key)."""
    known = registered(lake).get(version.key)
    if known is not None:
        if known == version:
            return False
        raise ConfigError(_conflict(known, version))
    table = pa.table(
        {
            "item_id": [version.key],
            "model": [version.model],
            "version": [version.version],
            "task": [version.task],
            "weights": [version.weights],
            "labels": [list(version.labels)],
            "registered_by": [by],
        },
        schema=REGISTRY_SCHEMA,
    )
    run_id = f"register-{version.fingerprint()[:16]}"
    with lake.writer(
        MODEL_REGISTRY, version.key, fingerprint=version.fingerprint(), run_id=run_id
    ) as writer:
        writer.write_chunk(table, input_end=1)
        writer.commit(REGISTRY_SCHEMA, model=version.model, version=version.version)
    return True


def _conflict(known: ModelVersion, new: ModelVersion) -> str:
    if (known.model, known.version) != (new.model, new.version):
        return (
            f"model {new.model} version {new.version} would have the key {new.key!r}, which "
            f"model {known.model} version {known.version} has; choose another name or version"
        )
    changed = [
        name for name in ("task", "weights", "labels") if getattr(known, name) != getattr(new, name)
    ]
    return (
        f"model {new.model} version {new.version} is registered already with other "
        f"{', '.join(changed)}; a registered version never changes: register a new version"
    )


def registered(lake: Lake) -> dict[str, ModelVersion]:
    """Every registered version, by key."""
    if not lake.committed_partitions(MODEL_REGISTRY):
        return {}
    rows = lake.read_current(MODEL_REGISTRY).to_pylist()
    return {
        row["item_id"]: ModelVersion(
            model=row["model"],
            version=row["version"],
            task=row["task"],
            weights=row["weights"],
            labels=tuple(row["labels"] or ()),
        )
        for row in rows
    }


def is_registered(lake: Lake, model: str, version: str) -> bool:
    return version_key(model, version) in registered(lake)
