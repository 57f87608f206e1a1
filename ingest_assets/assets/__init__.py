"""The asset graph's assets."""
