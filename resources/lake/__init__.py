"""The lake: Parquet tables with commit markers, checkpoints, leases and the current view."""

from resources.lake.lease import Lease, LeaseHolder
from resources.lake.tables import Commit, Lake, PartitionWriter

__all__ = ["Commit", "Lake", "Lease", "LeaseHolder", "PartitionWriter"]
