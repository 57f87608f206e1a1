"""Claiming new bucket objects into batches, and the sensors that do it on a schedule."""
