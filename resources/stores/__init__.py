"""Object stores behind one interface: local folders now; S3, GCS and HTTP plug in beside it."""

from resources.stores.base import ObjectInfo, ObjectStore, check_key
from resources.stores.local import LocalFolderStore
from resources.stores.open import open_store

__all__ = ["LocalFolderStore", "ObjectInfo", "ObjectStore", "check_key", "open_store"]
