"""Where the lake, the sources and the Dagster instance lie, and the check that the lake and
``dagster_home`` stay outside every source listed by folder or prefix."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from resources.stores.open import local_path, split_bucket_uri
from resources.stores.options import url_authority

if TYPE_CHECKING:
    from resources.config import BucketlakeConfig

#: Where a location lies: the store (the local disk, or a bucket at an endpoint) and a prefix
#: in it that ends with '/'; one lies inside another when its prefix starts with the other's.
Place = tuple[tuple[str, ...], str]


def refuse_overlapping_sources(config: BucketlakeConfig) -> None:
    """ValueError where the lake or ``dagster_home`` is the same place as a source's folder or
    prefix, lies inside it or contains it; sources read from a manifest are not checked."""
    lake_endpoint = None if isinstance(config.lake, str) else config.lake.endpoint_url
    lake = _place(config.lake_uri, lake_endpoint)
    home = _place(str(config.dagster_home_path), None)
    for source in config.sources:
        if source.uri is None:
            continue  # a manifest lists its objects: nothing is found by listing a folder
        uri = config.resolve(source.uri)
        place = _place(uri, source.endpoint_url)
        if (relation := _relation(lake, place)) is not None:
            raise ValueError(
                f"the lake ({config.lake_uri}) {relation} source {source.name!r} ({uri}): "
                "every sync would take the lake's own tables, commit markers and leases as "
                "new objects; move the lake to a folder or prefix outside every source"
            )
        if (relation := _relation(home, place)) is not None:
            raise ValueError(
                f"dagster_home ({config.dagster_home_path}) {relation} source {source.name!r} "
                f"({uri}): every sync would take the Dagster instance's files as new "
                "objects; set dagster_home to a folder outside the source"
            )


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
