"""Embeddings: their table, the model that makes them, and how good they are (k-NN accuracy).
Free of Dagster."""
