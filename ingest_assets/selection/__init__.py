"""Selection: choosing the items most worth labelling from their embeddings. Free of Dagster."""
