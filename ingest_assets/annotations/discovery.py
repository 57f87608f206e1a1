"""Finding a source's label and prediction files (its ``annotations``/``predictions`` globs),
and the order rule: a file is imported only once every batch claimed from its source has its
items committed, since the records name those items."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ingest_assets.annotations.importing import ImportSpec, import_key
from ingest_assets.claiming.globs import KeyFilter
from resources.stores.base import ObjectStore

if TYPE_CHECKING:  # the config models are Dagster Config classes: no Dagster at run time
    from resources.config import SourceConfig


@dataclass(frozen=True)
class FoundFile:
    """A label file found in a source, as one version of its import."""

    spec: ImportSpec
    change_token: str

    @property
    def run_key(self) -> str:
        """One run per version of the file and of its settings: a changed file, or one whose
        glob's settings (box rule) changed, is imported again."""
        text = self.change_token.encode() + b"\x00" + self.spec.to_json()
        return f"{self.spec.key}:{hashlib.sha256(text).hexdigest()[:16]}"


def find_label_files(source: SourceConfig, store: ObjectStore) -> list[FoundFile]:
    """Every object of the source that one of its label globs takes (the first glob wins)."""
    rules = [*source.annotations, *source.predictions]
    filters = [KeyFilter([rule.glob], []) for rule in rules]
    found: list[FoundFile] = []
    for page in store.list_objects():
        for info in page:
            for rule, keep in zip(rules, filters, strict=True):
                if keep(info.key):
                    uri = store.uri(info.key)
                    model = getattr(rule, "model", None)
                    version = getattr(rule, "version", None)
                    spec = ImportSpec(
                        import_key(uri),
                        uri,
                        rule.format,
                        model,
                        version,
                        rule.boxes,
                        source=source.name,
                    )
                    found.append(FoundFile(spec, info.change_token))
                    break
    return found


def batches_waited_for(registered: Iterable[str], committed: set[str], source: str) -> list[str]:
    """The source's claimed batches whose items are not committed yet (imports wait)."""
    prefix = f"{source}_"
    return [b for b in registered if b.startswith(prefix) and b not in committed]
