"""The inference runtime (DESIGN §6): torch models loaded from the registry's weights and run
over items streamed from their objects. ``import torch`` happens only when a model is used."""
