"""Classification metrics over whole-image classes: accuracy, precision, recall and F1 per
class with their macro and weighted averages, the confusion matrix, and top-k accuracy where
the predictions give several scored classes per item. An item counts where both sides have
a class for it; the rest are counted, not scored."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

TOP_K = (1, 3, 5)


@dataclass
class Classification:
    items: int
    accuracy: float
    per_class: list[dict[str, Any]]
    macro: dict[str, float]
    weighted: dict[str, float]
    labels: list[str]
    #: ``confusion[i][j]``: items of true class ``labels[i]`` predicted as ``labels[j]``.
    confusion: list[list[int]]
    top_k: dict[str, float] = field(default_factory=dict)
    without_prediction: int = 0
    without_truth: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "items": self.items,
            "accuracy": self.accuracy,
            "per_class": self.per_class,
            "macro": self.macro,
            "weighted": self.weighted,
            "labels": self.labels,
            "confusion": self.confusion,
            "top_k": self.top_k,
            "without_prediction": self.without_prediction,
            "without_truth": self.without_truth,
        }


def _ratio(num: float, den: float) -> float:
    return num / den if den else 0.0


def classify(
    truth: dict[str, str], predicted: dict[str, list[tuple[str, float]]]
) -> Classification | None:
    """The metrics of ``predicted`` (per item, its classes with scores) against ``truth``
    (per item, its class); None when no item has both."""
    scored = sorted(set(truth) & set(predicted))
    if not scored:
        return None
    ranked = {i: sorted(predicted[i], key=lambda p: (-p[1], p[0])) for i in scored}
    pairs = [(truth[i], ranked[i][0][0]) for i in scored]
    labels = sorted({t for t, _ in pairs} | {p for _, p in pairs})
    at = {label: n for n, label in enumerate(labels)}
    confusion = [[0] * len(labels) for _ in labels]
    for t, p in pairs:
        confusion[at[t]][at[p]] += 1
    support = Counter(t for t, _ in pairs)
    per_class: list[dict[str, Any]] = []
    for n, label in enumerate(labels):
        tp = confusion[n][n]
        predicted_as = sum(row[n] for row in confusion)
        precision, recall = _ratio(tp, predicted_as), _ratio(tp, support[label])
        f1 = _ratio(2 * precision * recall, precision + recall)
        per_class.append(
            {"label": label, "precision": precision, "recall": recall, "f1": f1,
             "support": support[label]}
        )  # fmt: skip
    total = len(pairs)
    macro = {
        m: sum(c[m] for c in per_class) / len(per_class) for m in ("precision", "recall", "f1")
    }
    weighted = {
        m: sum(c[m] * c["support"] for c in per_class) / total
        for m in ("precision", "recall", "f1")
    }
    deepest = max(len(r) for r in ranked.values())
    top_k = {
        f"top{k}": sum(truth[i] in [p for p, _ in ranked[i][:k]] for i in scored) / total
        for k in TOP_K
        if k == 1 or k <= deepest
    }
    return Classification(
        items=total,
        accuracy=sum(t == p for t, p in pairs) / total,
        per_class=per_class,
        macro=macro,
        weighted=weighted,
        labels=labels,
        confusion=confusion,
        top_k=top_k,
        without_prediction=len(set(truth) - set(predicted)),
        without_truth=len(set(predicted) - set(truth)),
    )
