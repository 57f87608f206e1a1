"""Bucketlake's asset graph: batches of bucket objects become dataset items."""
