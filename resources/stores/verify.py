"""Check a store before a large ingestion: list one page and read one object (as Nucleus and
Edge Impulse ask users to do), so a wrong bucket, endpoint or secret shows up at once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from resources.errors import ObjectNotFound
from resources.stores.base import ObjectStore
from resources.stores.local import LocalFolderStore

SAMPLE_BYTES = 1024


@dataclass(frozen=True)
class StoreCheck:
    store: str
    first_page: int
    more: bool
    sample_key: str | None = None
    sample_size: int | None = None
    sample_content_type: str | None = None
    sample_read: int = 0

    def lines(self) -> list[str]:
        more = " (more follow)" if self.more else ""
        out = [f"listing: {self.first_page} objects on the first page{more}"]
        if self.sample_key is None:
            out.append("the source is empty (or nothing matches its include/exclude globs)")
        else:
            out.append(
                f"sample: {self.sample_key}, {self.sample_size:,} bytes, "
                f"{self.sample_content_type or 'unknown content type'}; "
                f"read {self.sample_read} bytes"
            )
        return out


def verify_store(
    store: ObjectStore, *, keep: Callable[[str], bool] = lambda key: True, page_size: int = 1000
) -> StoreCheck:
    """List the first page and read the start of the first object that ``keep`` accepts.
    Store errors propagate with their own messages (bucket, key, what to do)."""
    if isinstance(store, LocalFolderStore) and not store.root.is_dir():
        raise ObjectNotFound(
            f"{store.name}: the folder does not exist; check the source's uri", store=store.name
        )
    page = store.list_page(page_size=page_size)
    candidates = [obj for obj in page if keep(obj.key)]
    if not candidates:
        return StoreCheck(store.name, len(page), len(page) >= page_size)
    info = store.head(candidates[0].key)
    data = store.get_range(info.key, 0, SAMPLE_BYTES)
    return StoreCheck(
        store=store.name,
        first_page=len(page),
        more=len(page) >= page_size,
        sample_key=info.key,
        sample_size=info.size,
        sample_content_type=info.content_type,
        sample_read=len(data),
    )
