"""One selection run over a pool of embedded items, the strategies composed as Lightly's are:

- THRESHOLD: items whose field (a score, or a number of the item such as its width) is outside
  the bounds, or unknown, are not candidates;
- WEIGHTS and SIMILARITY: scores in [0, 1] added to each candidate's diversity term;
- DIVERSITY: k-center greedy seeded with everything selected (or labelled) before, its
  distance over the starting radius times its weight; with weight 0 the picks are simply the
  highest scores, near-duplicates still kept apart;
- BALANCE: target proportions per class (a label or a predicted class), kept as quotas.

Free of Dagster and of the lake: the asset reads the pool, this chooses."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ingest_assets.selection.coreset import Coreset, k_center_greedy

Array = np.ndarray[Any, Any]
UNIFORM = "uniform"


@dataclass(frozen=True)
class Threshold:
    field: str
    min: float | None = None
    max: float | None = None

    def keeps(self, values: Array) -> Array:
        kept = ~np.isnan(values)
        if self.min is not None:
            kept &= values >= self.min
        if self.max is not None:
            kept &= values <= self.max
        result: Array = kept
        return result


@dataclass(frozen=True)
class Plan:
    n: int
    min_distance: float = 0.0
    diversity: float = 1.0
    weights: float = 0.0  # how much uncertainty counts, beside diversity
    similarity: float = 0.0  # how much likeness to the query items counts
    thresholds: tuple[Threshold, ...] = ()
    #: Class -> target share (normalized here), or ``{"uniform": 1}`` for every class alike.
    balance: Mapping[str, float] | None = None

    @property
    def strategy(self) -> str:
        parts = [
            name
            for name, on in (
                ("diversity", self.diversity > 0),
                ("weights", self.weights > 0),
                ("similarity", self.similarity > 0),
                ("threshold", bool(self.thresholds)),
                ("balance", bool(self.balance)),
            )
            if on
        ]
        return "+".join(parts) or "none"


@dataclass
class Pool:
    """The candidates of a run, by index: unit vectors, the per-item numbers thresholds and
    weights read (NaN where unknown), each item's class (for balance), the items chosen before
    (seeds), those that may not be chosen, and each item's near-duplicates."""

    item_ids: list[str]
    vectors: Array
    fields: dict[str, Array] = field(default_factory=dict)
    classes: Sequence[str | None] | None = None
    seeds: list[int] = field(default_factory=list)
    excluded: set[int] = field(default_factory=set)
    twins: dict[int, list[int]] = field(default_factory=dict)


@dataclass(frozen=True)
class Selected:
    coreset: Coreset
    candidates: int  # items a run could choose from (after filters and thresholds)
    balance_targets: dict[str, int]


def select(pool: Pool, plan: Plan, *, nearest: Array | None = None) -> Selected:
    """Up to ``plan.n`` items of ``pool``; ``nearest``: each item's distance to the seeds if
    an earlier run kept it (see :func:`k_center_greedy`)."""
    count = len(pool.item_ids)
    eligible = np.ones(count, dtype=bool)
    eligible[list(pool.excluded)] = False
    for threshold in plan.thresholds:
        eligible &= threshold.keeps(_field(pool, threshold.field))
    bonus = np.zeros(count, np.float32)
    if plan.weights > 0:
        bonus += plan.weights * np.nan_to_num(_field(pool, "uncertainty"), nan=0.0)
    if plan.similarity > 0:
        bonus += plan.similarity * np.nan_to_num(_field(pool, "similarity"), nan=0.0)
    groups, quotas, targets = _quotas(pool, plan, eligible)
    coreset = k_center_greedy(
        pool.vectors,
        plan.n,
        seeds=pool.seeds,
        excluded=np.flatnonzero(~eligible).tolist(),
        twins=pool.twins,
        min_distance=plan.min_distance,
        nearest=nearest,
        bonus=bonus,
        diversity=plan.diversity,
        groups=groups,
        quotas=quotas,
        normalized=True,
    )
    candidates = int(eligible.sum()) - len(set(pool.seeds) & set(np.flatnonzero(eligible)))
    return Selected(coreset, candidates, targets)


def _field(pool: Pool, name: str) -> Array:
    if name not in pool.fields:
        known = ", ".join(sorted(pool.fields)) or "none"
        raise ValueError(f"no field {name!r} to threshold or weight by; the fields are {known}")
    values: Array = np.asarray(pool.fields[name], np.float32)
    return values


def _quotas(
    pool: Pool, plan: Plan, eligible: Array
) -> tuple[Array | None, dict[int, int] | None, dict[str, int]]:
    if not plan.balance:
        return None, None, {}
    if pool.classes is None:
        raise ValueError("balance needs a class per item (labels or predictions)")
    seen = sorted({c for c, ok in zip(pool.classes, eligible, strict=True) if ok and c})
    wanted = dict(plan.balance)
    if UNIFORM in wanted:
        wanted = {name: 1.0 for name in seen}
    total = sum(v for v in wanted.values() if v > 0) or 1.0
    names = sorted(set(seen) | set(wanted))
    code = {name: i for i, name in enumerate(names)}
    groups = np.array([code.get(c, -1) if c else -1 for c in pool.classes], dtype=np.int64)
    targets = {name: math.ceil(plan.n * max(wanted.get(name, 0.0), 0.0) / total) for name in names}
    quotas = {code[name]: limit for name, limit in targets.items()}
    quotas[-1] = 0  # items of no class wait until every class with room is done
    return groups, quotas, targets
