"""Label and split from an object key, as Edge Impulse's data sources document them.

- ``folder``: the label is the name of the folder holding the file (``cars/cars.01741.jpg`` ->
  ``cars``); the split is drawn deterministically with ``test_fraction``.
- ``split-folders``: ``training/<label>/...`` and ``testing/<label>/...`` set both; anything else
  falls back to ``folder``.
- ``filename``: the label is the file name up to its first ``.`` (``cars.01741.jpg`` -> ``cars``).
- ``none``: every item stays unlabeled.

With every strategy, files in an ``unlabeled/`` folder stay unlabeled, and the same item always
lands in the same split.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # the config models are Dagster Config classes: no Dagster at run time
    from resources.config import LabelStrategy


Split = Literal["train", "test"]
UNLABELED_FOLDER = "unlabeled"
SPLIT_FOLDERS: dict[str, Split] = {"training": "train", "testing": "test"}


def deterministic_split(item_id: str, test_fraction: float) -> Split:
    """``test`` for a stable ``test_fraction`` share of item ids, ``train`` for the rest."""
    digest = hashlib.sha256(b"split\x00" + item_id.encode("ascii")).digest()
    position = (int.from_bytes(digest[:8], "big") >> 11) / 2**53  # exact in a float: < 1.0
    return "test" if position < test_fraction else "train"


def _folder_label(folders: list[str]) -> str | None:
    return folders[-1] if folders else None


def label_and_split(
    key: str, strategy: LabelStrategy, *, item_id: str, test_fraction: float
) -> tuple[str | None, Split]:
    """The item's label (None when unlabeled) and split."""
    *folders, filename = key.split("/")
    split = deterministic_split(item_id, test_fraction)
    if strategy == "none":
        return None, split
    if strategy == "split-folders" and folders and folders[0] in SPLIT_FOLDERS:
        split = SPLIT_FOLDERS[folders[0]]
        folders = folders[1:]
    if UNLABELED_FOLDER in folders:
        return None, split
    if strategy == "filename":
        return filename.split(".", 1)[0] or None, split
    return _folder_label(folders), split
