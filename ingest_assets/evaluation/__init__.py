"""Scoring a model version against the ground truth: COCO detection metrics, classification
metrics and the per-item errors a selection can sort by. Free of Dagster."""
