"""Objects to model inputs, in the loader's workers: fetch an item's bytes from its store,
decode them (EXIF orientation applied, JPEG decoded at the smallest scale that serves) and
resize them as the model's ``InputSpec`` says, to ``uint8`` HWC arrays (a quarter of float32's
size to carry between processes; the main process normalizes a whole batch at once).
Free of torch."""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from resources.errors import (
    ObjectChanged,
    ObjectNotFound,
    StoreError,
    TransientStoreError,
    read_failure_reason,
)
from resources.inference.specs import InputSpec
from resources.stores.base import NO_LIMITS, ObjectStore, ReadLimits

#: The crop mode's resize before its centre crop, as ImageNet's evaluation (256 for 224).
CROP_RATIO = 0.875


@dataclass(frozen=True)
class ItemRef:
    """An item to run a model on: where it is, and which version of the object was claimed."""

    item_id: str
    key: str
    change_token: str | None = None


def decode(data: bytes, spec: InputSpec) -> np.ndarray[Any, Any]:
    """``data`` as the model's input, uint8 HWC (HW for one channel)."""
    with Image.open(io.BytesIO(data)) as image:
        height, width = spec.size
        if spec.resize != "full":
            side = max(height, width) / (CROP_RATIO if spec.resize == "crop" else 1.0)
            image.draft("RGB" if spec.channels == 3 else "L", (int(side), int(side)))
        shown = ImageOps.exif_transpose(image)
        shown = shown.convert("RGB" if spec.channels == 3 else "L")
        if spec.resize == "stretch":
            shown = shown.resize((width, height), Image.Resampling.BILINEAR)
        elif spec.resize == "crop":
            scale = max(height, width) / CROP_RATIO / min(shown.size)
            resized = (
                max(width, round(shown.width * scale)),
                max(height, round(shown.height * scale)),
            )
            shown = shown.resize(resized, Image.Resampling.BILINEAR)
            left, top = (shown.width - width) // 2, (shown.height - height) // 2
            shown = shown.crop((left, top, left + width, top + height))
        return np.array(shown, dtype=np.uint8)  # writable, as torch.from_numpy wants


class ItemImages:
    """A map-style dataset (what ``torch.utils.data.DataLoader`` takes) of items' inputs. Each
    element is ``(index, array or None, error or None)``: an object that cannot be read or
    decoded is an error (``<reason>: <what happened>``), never an exception that would stop
    the batch; a transient store failure raises, so that the step is retried. ``open_store`` is
    called once per worker process (stores hold clients that do not cross a fork)."""

    def __init__(
        self,
        items: Sequence[ItemRef],
        open_store: Callable[[], ObjectStore],
        spec: InputSpec,
        limits: ReadLimits = NO_LIMITS,
    ) -> None:
        self.items = list(items)
        self.open_store = open_store
        self.spec = spec
        self.limits = limits
        self._store: ObjectStore | None = None

    def __len__(self) -> int:
        return len(self.items)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_store": None}

    def connect(self) -> None:
        """Open the store now (before threads share it)."""
        if self._store is None:
            self._store = self.open_store()

    def __getitem__(self, index: int) -> tuple[int, np.ndarray[Any, Any] | None, str | None]:
        item = self.items[index]
        self.connect()
        assert self._store is not None
        try:
            data = self._store.get_bounded(item.key, if_token=item.change_token, limits=self.limits)
        except TransientStoreError:
            raise  # the store is having trouble, not the item: the step fails and is retried
        except ObjectNotFound as exc:
            return index, None, f"missing: {exc}"
        except ObjectChanged as exc:
            return index, None, f"superseded: {exc}"
        except StoreError as exc:
            return index, None, f"{read_failure_reason(exc)}: {exc}"
        try:
            return index, decode(data, self.spec), None
        except Exception as exc:  # any decoder failure is this item's, not the batch's
            return index, None, f"corrupt: {type(exc).__name__}: {exc}"


def collate(
    elements: list[tuple[int, np.ndarray[Any, Any] | None, str | None]],
) -> tuple[list[int], list[np.ndarray[Any, Any]], list[tuple[int, str]]]:
    """Indices and arrays of the decoded elements, and (index, error) of the others."""
    indices, arrays, errors = [], [], []
    for index, array, error in elements:
        if array is None:
            errors.append((index, error or "corrupt: not decoded"))
        else:
            indices.append(index)
            arrays.append(array)
    return indices, arrays, errors
