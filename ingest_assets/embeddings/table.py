"""The ``embeddings`` table (DESIGN §4): one row per ok item, its vector a fixed-size float32
list, so that a reader gets an N-by-d array without a copy per row."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

#: Bumped when the rows a model gives for the same items change.
EMBEDDINGS_CODE_VERSION = "embeddings-1"


def embeddings_schema(dim: int) -> pa.Schema:
    return pa.schema(
        [
            ("item_id", pa.string()),
            ("model", pa.string()),
            ("model_version", pa.string()),
            ("vector", pa.list_(pa.float32(), dim)),
        ]
    )


def embeddings_table(
    item_ids: list[str], model: str, version: str, vectors: np.ndarray[Any, Any]
) -> pa.Table:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    dim = vectors.shape[1]
    flat = pa.array(vectors.reshape(-1), type=pa.float32())
    return pa.table(
        {
            "item_id": pa.array(item_ids, pa.string()),
            "model": pa.array([model] * len(item_ids), pa.string()),
            "model_version": pa.array([version] * len(item_ids), pa.string()),
            "vector": pa.FixedSizeListArray.from_arrays(flat, dim),
        },
        schema=embeddings_schema(dim),
    )


def vectors_of(table: pa.Table) -> np.ndarray[Any, Any]:
    """The ``vector`` column as an N-by-d float32 array."""
    column = table.column("vector").combine_chunks()
    dim = column.type.list_size
    if len(column) == 0:
        return np.zeros((0, dim), np.float32)
    values = column.flatten().to_numpy(zero_copy_only=False)
    out: np.ndarray[Any, Any] = values.reshape(len(column), dim).astype(np.float32, copy=False)
    return out
