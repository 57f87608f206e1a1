"""Claiming (DESIGN §7): new or changed object versions of a source become batches, exactly once.
Pure logic over the object-store interface and the lake's datapool; no Dagster."""
