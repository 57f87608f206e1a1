"""Pure item logic, free of Dagster: identity, labels and splits, image inspection."""
