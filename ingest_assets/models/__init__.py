"""Models: the registry of model versions that predictions, embeddings and evaluation name."""
