"""The project's own exceptions. Provider errors are translated into these at the store boundary.

BucketlakeError
├── ConfigError                 the project config is invalid (field, value, what is allowed)
├── StoreError                  an object store refused or failed (names store, bucket, key)
│   ├── ObjectNotFound
│   ├── AccessDenied
│   ├── BadCredentials
│   ├── PreconditionFailed      a create-only or conditional write lost to another writer
│   │   └── ObjectChanged       a read pinned to a version found another one
│   ├── InvalidKey              a key that could escape its root (``..``, absolute, NUL)
│   ├── ObjectTooLarge          larger than a read's cap (``max_object_bytes``): never read whole
│   ├── DeadlineExceeded        a read ran past its total deadline (``fetch_deadline_seconds``)
│   └── TransientStoreError     timeouts, 5xx, throttling: worth retrying
└── LakeError                   the lake's table contract was violated or cannot be met
    └── LeaseHeld               another live writer holds the partition (or claim) lease
"""

from __future__ import annotations


class BucketlakeError(Exception):
    """Base of every error Bucketlake raises on purpose."""


class ConfigError(BucketlakeError):
    """The project configuration is invalid."""


class StoreError(BucketlakeError):
    """An object store operation failed; the message names the store, bucket and key."""

    def __init__(self, message: str, *, store: str = "", key: str | None = None) -> None:
        super().__init__(message)
        self.store = store
        self.key = key


class ObjectNotFound(StoreError):
    pass


class AccessDenied(StoreError):
    pass


class BadCredentials(StoreError):
    pass


class PreconditionFailed(StoreError):
    pass


class ObjectChanged(PreconditionFailed):
    """The object is no longer the version a read was pinned to (``get(key, if_token=...)``)."""

    @classmethod
    def rewritten(cls, store: str, key: str, token: str) -> ObjectChanged:
        return cls(
            f"{store}: {key!r} is no longer the version {token}: it was rewritten since it "
            "was listed",
            store=store,
            key=key,
        )


class InvalidKey(StoreError):
    pass


class TransientStoreError(StoreError):
    pass


class ObjectTooLarge(StoreError):
    """The object is larger than the read allows (by its listed or announced size, or by the
    bytes it streamed); no more than the cap was ever held. Retrying cannot help."""


class DeadlineExceeded(StoreError):
    """One object's read (retries included) took longer than its deadline allows."""


class LakeError(BucketlakeError):
    """The lake's storage contract cannot be met (a missing or inconsistent table)."""


class TableChanged(LakeError):
    """A partition was committed again while being read: its files of the commit being read
    are gone. Reading again reads the new commit."""


class LeaseHeld(LakeError):
    """Another live writer holds the lease."""


#: Why a read failed, as item errors and skip counts name it (the text before the first ':').
ACCESS_DENIED = "access denied"
BAD_CREDENTIALS = "bad credentials"
TOO_LARGE = "too large"
TOO_SLOW = "fetch deadline passed"
UNADDRESSABLE = "cannot be addressed"
FETCH_FAILED = "fetch failed"


def read_failure_reason(exc: StoreError) -> str:
    """The reason a failed read gives, for the errors a store raises past its retries."""
    reasons: list[tuple[type[StoreError], str]] = [
        (AccessDenied, ACCESS_DENIED),
        (BadCredentials, BAD_CREDENTIALS),
        (ObjectTooLarge, TOO_LARGE),
        (DeadlineExceeded, TOO_SLOW),
        (InvalidKey, UNADDRESSABLE),
    ]
    return next((reason for kind, reason in reasons if isinstance(exc, kind)), FETCH_FAILED)
