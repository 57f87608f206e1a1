"""The config's ``inference`` (how models run) and ``embeddings`` (which model embeds every
item) sections."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: ``embeddings.model`` values that name no registered model.
DEFAULT_EMBEDDINGS = "default"
NO_EMBEDDINGS = "none"


def predictions_asset(model: str) -> str:
    """The pre-tagging asset of a configured model (a name that is a valid asset key)."""
    return "predictions_" + model.replace("-", "_")


class InferenceConfig(BaseModel):
    """How the inference runtime runs models (the ``InferenceRuntime`` resource's fields)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="auto: CUDA where torch finds it, else the CPU"
    )
    batch_size: int | None = Field(
        None, ge=1, description="images per forward pass (default: 32 on CPU, 128 on CUDA)"
    )
    num_workers: int | None = Field(
        None, ge=0, description="loader processes that fetch and decode (0: in the step itself)"
    )
    threads: int | None = Field(None, ge=1, description="torch's CPU threads")
    precision: Literal["fp32", "fp16", "bf16"] = Field(
        "fp32", description="fp16 or bf16 run the forward pass under autocast"
    )


class EmbeddingsConfig(BaseModel):
    """Which model embeds every ok item of every batch (the ``embeddings`` asset)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(
        DEFAULT_EMBEDDINGS,
        description="'default' (ImageNet MobileNetV2, offline), 'none' (no embeddings), or a "
        "registered model of task embedding, such as one trained on the pool",
    )
    version: str | None = Field(None, description="the registered model's version")
    knn_k: int = Field(5, ge=1, description="k of the k-NN accuracy reported on labelled items")

    @model_validator(mode="after")
    def _version_names_a_model(self) -> EmbeddingsConfig:
        builtin = self.model in (DEFAULT_EMBEDDINGS, NO_EMBEDDINGS)
        if builtin and self.version is not None:
            raise ValueError(
                f"embeddings.version applies to a registered model, not {self.model!r}"
            )
        if not builtin and self.version is None:
            raise ValueError(
                f"embeddings.model {self.model!r} needs embeddings.version (the registered "
                "version to embed with)"
            )
        return self

    @property
    def enabled(self) -> bool:
        return self.model != NO_EMBEDDINGS
