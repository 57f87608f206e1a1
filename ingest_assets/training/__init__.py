"""Models the platform trains itself: a self-supervised embedding model on the pool
(SimCLR-style), and a classifier fine-tuned on the labelled items. Free of Dagster; torch is
imported by these modules, so callers import them where a step runs."""
