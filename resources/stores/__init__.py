"""Object stores behind one interface (``base.ObjectStore``): local folders, S3 and
S3-compatible stores, GCS, read-only HTTP(S) and manifests; ``open.open_store`` picks one by
URI. Nothing is imported here, so that code using only the interface loads no store client."""
